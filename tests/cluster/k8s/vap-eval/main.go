// Command vap-eval decides admission requests with a ValidatingAdmissionPolicy the way kube-apiserver of this
// module's release does: the policy is compiled as validating.compilePolicy compiles it (same CEL environment,
// variables, match conditions, validations and message expressions) and evaluated with the same validator.
// Input on stdin: {"policy": <ValidatingAdmissionPolicy>, "requests": [{operation, namespace, name, username,
// extra, object, oldObject}]}; output on stdout: one {matched, allowed, messages, errors} per request.
// tests/controller/test_xcom_guard_rules.py runs kdag's XCom guard through it without a cluster.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	v1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/cel/environment"
)

type request struct {
	Operation string              `json:"operation"`
	Namespace string              `json:"namespace"`
	Name      string              `json:"name"`
	Username  string              `json:"username"`
	Extra     map[string][]string `json:"extra"`
	Object    map[string]any      `json:"object"`
	OldObject map[string]any      `json:"oldObject"`
}

type input struct {
	Policy   v1.ValidatingAdmissionPolicy `json:"policy"`
	Requests []request                    `json:"requests"`
}

type decision struct {
	Matched  bool     `json:"matched"`
	Allowed  bool     `json:"allowed"`
	Messages []string `json:"messages"`
	Errors   []string `json:"errors"`
}

func compile(policy *v1.ValidatingAdmissionPolicy) validating.Validator {
	env, err := cel.NewCompositionEnv(cel.VariablesTypeName, environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion(), true))
	if err != nil {
		panic(err)
	}
	vars := cel.OptionalVariableDeclarations{HasParams: false, HasAuthorizer: true, StrictCost: true}
	messageVars := cel.OptionalVariableDeclarations{HasParams: false, HasAuthorizer: false, StrictCost: true}
	compiler := cel.NewCompositedCompilerFromTemplate(env)
	variables := make([]cel.NamedExpressionAccessor, len(policy.Spec.Variables))
	for i, v := range policy.Spec.Variables {
		variables[i] = &validating.Variable{Name: v.Name, Expression: v.Expression}
	}
	compiler.CompileAndStoreVariables(variables, vars, environment.StoredExpressions)
	conditions := make([]cel.ExpressionAccessor, len(policy.Spec.MatchConditions))
	for i := range policy.Spec.MatchConditions {
		conditions[i] = (*matchconditions.MatchCondition)(&policy.Spec.MatchConditions[i])
	}
	matcher := matchconditions.NewMatcher(compiler.CompileCondition(conditions, vars, environment.StoredExpressions), policy.Spec.FailurePolicy, "policy", "validate", policy.Name)
	validations := make([]cel.ExpressionAccessor, len(policy.Spec.Validations))
	messages := make([]cel.ExpressionAccessor, len(policy.Spec.Validations))
	for i, v := range policy.Spec.Validations {
		validations[i] = &validating.ValidationCondition{Expression: v.Expression, Message: v.Message, Reason: v.Reason}
		if v.MessageExpression != "" {
			messages[i] = &validating.MessageExpressionCondition{MessageExpression: v.MessageExpression}
		}
	}
	return validating.NewValidator(
		compiler.CompileCondition(validations, vars, environment.StoredExpressions),
		matcher,
		compiler.CompileCondition(nil, vars, environment.StoredExpressions),
		compiler.CompileCondition(messages, messageVars, environment.StoredExpressions),
		policy.Spec.FailurePolicy,
	)
}

func object(value map[string]any) runtime.Object {
	if value == nil {
		return nil
	}
	return &unstructured.Unstructured{Object: value}
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	validator := compile(&in.Policy)
	gvk := schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	out := make([]decision, 0, len(in.Requests))
	for _, r := range in.Requests {
		info := &user.DefaultInfo{Name: r.Username, Extra: r.Extra}
		obj, old := object(r.Object), object(r.OldObject)
		attrs := admission.NewAttributesRecord(obj, old, gvk, r.Namespace, r.Name, gvr, "", admission.Operation(r.Operation), nil, false, info)
		versioned := &admission.VersionedAttributes{Attributes: attrs, VersionedKind: gvk, VersionedObject: obj, VersionedOldObject: old}
		result := validator.Validate(context.Background(), gvr, versioned, nil, nil, celconfig.RuntimeCELCostBudget, nil)
		d := decision{Matched: len(result.Decisions) > 0, Allowed: true, Messages: []string{}, Errors: []string{}}
		for _, dec := range result.Decisions {
			if dec.Action == validating.ActionDeny {
				d.Allowed = false
				if dec.Evaluation == validating.EvalError {
					d.Errors = append(d.Errors, dec.Message)
				} else {
					d.Messages = append(d.Messages, dec.Message)
				}
			}
		}
		out = append(out, d)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
