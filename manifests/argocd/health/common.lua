-- Argo CD runs checks from argocd-cm without Lua's string and math libraries (and cannot
-- `require` a shared file): only .., tostring and the base functions are used here, and
-- render_cm.py puts this common part in front of each kind's check.
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

-- Progressing with `waiting` while the operator has written no status, or while its status is
-- for an older generation (a phase written for an older spec says nothing about the current
-- one); nil once status describes the current spec.
local function not_observed(waiting)
  local status = obj.status
  if status == nil or next(status) == nil then
    return {status = "Progressing", message = waiting}
  end
  local generation = obj.metadata.generation
  if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
    return {status = "Progressing", message = "Waiting for the Edgeline operator to observe generation " .. generation}
  end
  return nil
end

-- The end of every kind's chain of phases: none reported yet, or one this check does not know.
local function unexpected_phase(phase)
  if phase == nil then
    return {status = "Progressing", message = "Waiting for the Edgeline operator to report a phase"}
  end
  return {status = "Unknown", message = "Unknown phase " .. tostring(phase)}
end
