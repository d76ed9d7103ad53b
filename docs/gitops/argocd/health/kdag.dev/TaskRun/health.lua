-- Argo CD health of a kdag TaskRun: skipped counts as healthy, as in Airflow; failed upstream as degraded.
local hs = { status = "Progressing", message = "Waiting for the kdag controller" }
if obj.status == nil or obj.status.phase == nil then
  return hs
end
local phase = obj.status.phase
local detail = obj.status.message
if phase == "Succeeded" or phase == "Skipped" then
  hs.status = "Healthy"
elseif phase == "Failed" or phase == "UpstreamFailed" then
  hs.status = "Degraded"
end
if detail ~= nil and detail ~= "" then
  hs.message = phase .. ": " .. detail
else
  hs.message = phase
end
return hs
