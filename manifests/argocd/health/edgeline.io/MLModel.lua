-- Argo CD health of an Edgeline MLModel (edgeline.io/v1alpha1).

local early = not_observed("Waiting for the Edgeline operator to validate the model")
if early ~= nil then
  return early
end

local status = obj.status
local name = obj.metadata.name
if obj.spec ~= nil and obj.spec.model ~= nil and obj.spec.version ~= nil then
  name = obj.spec.model .. " " .. obj.spec.version
end

local phase = status.phase
if phase == "Ready" then
  -- The Ready message is the inspection summary (IR, opset, inputs, outputs, parameters).
  local ready = condition(status, "Ready")
  local summary = "artifact verified and inspected"
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    summary = ready.message
  end
  hs.status = "Healthy"
  hs.message = name .. " is validated: " .. summary
elseif phase == "Validating" then
  hs.status = "Progressing"
  hs.message = says(condition(status, "Ready"), "Validating the artifact")
elseif phase == "Pending" then
  -- Pending after a failure that may pass (a timeout, a 503): the operator retries.
  hs.status = "Progressing"
  hs.message = says(condition(status, "Ready"), "Waiting for validation")
elseif phase == "Invalid" then
  hs.status = "Degraded"
  hs.message = says(condition(status, "Ready"), "The model failed validation")
else
  hs = unexpected_phase(phase)
end
return hs
