//go:build tools

// Package argo only names the Argo Workflows commands this module builds, so `go mod tidy` keeps them.
package argo

import (
	_ "github.com/argoproj/argo-workflows/v4/cmd/argoexec"
	_ "github.com/argoproj/argo-workflows/v4/cmd/workflow-controller"
)
