-- Argo CD health of an Edgeline MLModel (edgeline.io/v1alpha1).
-- Argo CD runs checks from argocd-cm without Lua's string and math libraries:
-- only .., tostring and the base functions are used here.
local hs = {}

local function condition(status, ctype)
  if status.conditions ~= nil then
    for _, c in ipairs(status.conditions) do
      if c.type == ctype then
        return c
      end
    end
  end
  return nil
end

-- "Reason: message" of a condition, or `fallback` when there is none or it says nothing.
local function says(c, fallback)
  if c == nil then
    return fallback
  end
  if c.message ~= nil and c.message ~= "" then
    if c.reason ~= nil and c.reason ~= "" then
      return c.reason .. ": " .. c.message
    end
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local status = obj.status
if status == nil or next(status) == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Edgeline operator to validate the model"
  return hs
end

-- A phase written for an older spec says nothing about the current one.
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Edgeline operator to observe generation " .. generation
  return hs
end

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
elseif phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Edgeline operator to report a phase"
else
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
end
return hs
