"""`kdag ui`: a read-mostly web UI over what the user's kubeconfig (or the chart's ServiceAccount) may see.

It reads through `kdag.kube` (one shared list+watch per kind in `cache`, fanned out to browsers by
server-sent events in `stream`), renders with pure functions (`layout`, `drawing`, `timeline`, `rows`,
`trigger_form`) and Jinja2 templates with autoescape, and decides nothing the controller decides.
See docs/ui.md.
"""
