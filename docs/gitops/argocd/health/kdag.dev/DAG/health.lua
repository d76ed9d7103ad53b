-- Argo CD health of a kdag DAG: Ready once the controller has seen the current generation and accepted it.
local hs = { status = "Progressing", message = "Waiting for the kdag controller" }
if obj.status == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "The kdag controller has not seen generation " .. tostring(generation) .. " yet"
  return hs
end
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      hs.message = condition.message or condition.reason or ""
      if condition.status == "True" then
        hs.status = "Healthy"
      elseif condition.status == "False" then
        hs.status = "Degraded"
      end
      return hs
    end
  end
end
return hs
