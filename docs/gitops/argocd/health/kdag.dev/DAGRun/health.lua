-- Argo CD health of a kdag DAGRun: a finished run is Healthy or Degraded, a run under way is Progressing.
local hs = { status = "Progressing", message = "Waiting for the kdag controller" }
if obj.status == nil then
  return hs
end
local progress = obj.status.progress or ""
local phase = obj.status.phase
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Stalled" and condition.status == "True" then
      hs.status = "Degraded"
      hs.message = condition.message or condition.reason or "Stalled"
      return hs
    end
  end
end
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = "Succeeded " .. progress
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = "Failed " .. progress
elseif phase ~= nil then
  hs.message = phase .. " " .. progress
end
return hs
