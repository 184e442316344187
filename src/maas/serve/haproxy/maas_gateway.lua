-- maas's gateway checks, run by HAProxy's Lua: an inference request is checked against the
-- model's own config before Triton sees it. Triton 2.51 sizes buffers from the shape a request
-- declares before it checks max_batch_size (std::bad_alloc, abort) and crashes on a JSON
-- document of 4 MiB or more; everything those requests need is in the JSON header.
local json = require("maas_json")
local settings = require("maas_gateway_settings") -- written by maas for each start

local MAX_NESTING = 32 -- data arrays nest at most as deep as a tensor's rank

-- Bytes per element of each fixed-size datatype; BYTES is variable (4-byte length + bytes).
local ELEMENT_BYTES = {
  BOOL = 1, INT8 = 1, UINT8 = 1, INT16 = 2, UINT16 = 2, FP16 = 2, BF16 = 2,
  INT32 = 4, UINT32 = 4, FP32 = 4, INT64 = 8, UINT64 = 8, FP64 = 8,
}


local function is_integer(value)
  return type(value) == "number" and value == math.floor(value) and value >= 0
    and value < 2 ^ 53
end

local is_array, is_object = json.is_array, json.is_object

local function datatype_of(config_input)
  local declared = config_input.data_type or ""
  if declared == "TYPE_STRING" then
    return "BYTES"
  end
  return (declared:gsub("^TYPE_", ""))
end

local function names(entries)
  local listed = {}
  for _, entry in ipairs(entries or {}) do
    listed[#listed + 1] = tostring(entry.name)
  end
  return table.concat(listed, ", ")
end

local function find_named(entries, name)
  for _, entry in ipairs(entries or {}) do
    if entry.name == name then
      return entry
    end
  end
  return nil
end

-- The shape Triton would accept: batch dimension (when batching) then the config's dims.
local function check_shape(model, config, config_input, shape)
  local name = config_input.name
  if not is_array(shape) or #shape == 0 then
    return nil, ("input '%s' of model '%s': 'shape' must be a non-empty array of integers"):format(
      name, model)
  end
  local dims = config_input.dims or {}
  local max_batch = tonumber(config.max_batch_size) or 0
  local batched = max_batch > 0 and 1 or 0
  local expected = {}
  if batched == 1 then
    expected[1] = ("[1-%d]"):format(max_batch)
  end
  for _, dim in ipairs(dims) do
    expected[#expected + 1] = tonumber(dim) < 0 and "n" or tostring(dim)
  end
  local wanted = "[" .. table.concat(expected, ", ") .. "]"
  if #shape ~= #dims + batched then
    return nil, ("input '%s' of model '%s' has shape of rank %d; expected %s"):format(
      name, model, #shape, wanted)
  end
  local elements = 1
  for index, size in ipairs(shape) do
    if not is_integer(size) then
      return nil, ("input '%s' of model '%s': shape entries must be non-negative integers; "
        .. "expected %s"):format(name, model, wanted)
    end
    if batched == 1 and index == 1 then
      if size < 1 or size > max_batch then
        return nil, ("input '%s' of model '%s': batch of %d is outside 1-%d (max_batch_size); "
          .. "expected %s"):format(name, model, size, max_batch, wanted)
      end
    else
      local dim = tonumber(dims[index - batched])
      if dim >= 0 and size ~= dim then
        return nil, ("input '%s' of model '%s' has shape [%s]; expected %s"):format(
          name, model, table.concat(shape, ", "), wanted)
      end
    end
    elements = elements * size
  end
  return elements
end

local UNSIGNED = { UINT8 = true, UINT16 = true, UINT32 = true, UINT64 = true }
local SIGNED = { INT8 = true, INT16 = true, INT32 = true, INT64 = true }

-- Whether one JSON value can be an element of datatype (Triton's parser returns 500 otherwise).
local function leaf_fits(datatype, item)
  if datatype == "BOOL" then
    return type(item) == "boolean"
  elseif datatype == "BYTES" then
    return type(item) == "string"
  elseif type(item) ~= "number" then
    return false
  elseif UNSIGNED[datatype] then
    return is_integer(item)
  elseif SIGNED[datatype] then
    return item == math.floor(item) and math.abs(item) < 2 ^ 63
  end
  return true
end

local LEAF_NAMES = { BOOL = "a boolean", BYTES = "a string" }

-- Counts the leaves of a (possibly nested) JSON data array, checking each one's JSON type.
local function count_data(data, datatype, depth)
  if depth > MAX_NESTING then
    return nil, "nested deeper than any tensor"
  end
  local count = 0
  for _, item in ipairs(data) do
    if type(item) == "table" and item ~= json.null then
      if not is_array(item) then
        return nil, "holds an object"
      end
      local inner, problem = count_data(item, datatype, depth + 1)
      if not inner then
        return nil, problem
      end
      count = count + inner
    elseif not leaf_fits(datatype, item) then
      local found = item == json.null and "null" or "a " .. type(item)
      if type(item) == "number" then
        found = "the number " .. tostring(item)
      end
      local wanted = LEAF_NAMES[datatype]
        or (datatype:find("INT") and "an integer in " .. datatype .. "'s range" or "a number")
      return nil, ("holds %s where %s was expected"):format(found, wanted)
    else
      count = count + 1
    end
  end
  return count
end


-- Bytes this input occupies in the binary part of the body (0 for JSON data or shared memory).
local function check_input_data(model, input, datatype, elements)
  local name = input.name
  local where = ("input '%s' of model '%s'"):format(name, model)
  local params = input.parameters
  if params ~= nil and not is_object(params) then
    return nil, where .. ": 'parameters' must be a JSON object"
  end
  params = params or {}
  local width = ELEMENT_BYTES[datatype]
  local binary = params.binary_data_size
  if binary ~= nil then
    if not is_integer(binary) then
      return nil, where .. ": binary_data_size must be a non-negative integer"
    end
    if width and binary ~= elements * width then
      return nil, ("%s: binary_data_size is %d bytes; shape and %s need %d"):format(
        where, binary, datatype, elements * width)
    end
    if not width and binary < 4 * elements then
      return nil, ("%s: binary_data_size of %d bytes is too small for %d BYTES elements"):format(
        where, binary, elements)
    end
    return binary
  end
  if params.shared_memory_region ~= nil then
    local size = params.shared_memory_byte_size
    if type(params.shared_memory_region) ~= "string" or not is_integer(size) then
      return nil, where .. ": shared memory needs a region name and an integer byte size"
    end
    if width and size ~= elements * width then
      return nil, ("%s: shared_memory_byte_size is %d bytes; shape and %s need %d"):format(
        where, size, datatype, elements * width)
    end
    return 0
  end
  local data = input.data
  if data == nil then
    return nil, where .. " has no 'data', binary_data_size or shared_memory_region"
  end
  if not is_array(data) then
    return nil, where .. ": 'data' must be an array"
  end
  local counted, problem = count_data(data, datatype, 1)
  if not counted then
    return nil, ("%s: 'data' %s"):format(where, problem)
  end
  if counted ~= elements then
    return nil, ("%s: 'data' holds %d values; its shape needs %d"):format(
      where, counted, elements)
  end
  return 0
end

local function check_input(model, config, input)
  if not is_object(input) then
    return nil, "each entry of 'inputs' must be an object"
  end
  if type(input.name) ~= "string" then
    return nil, ("an input of model '%s' has no 'name'; expected one of: %s"):format(
      model, names(config.input))
  end
  local config_input = find_named(config.input, input.name)
  if not config_input then
    return nil, ("model '%s' has no input '%s'; expected: %s"):format(
      model, input.name, names(config.input))
  end
  local datatype = datatype_of(config_input)
  if input.datatype ~= datatype then
    return nil, ("input '%s' of model '%s' has datatype %s; expected %s"):format(
      input.name, model, tostring(input.datatype), datatype)
  end
  local elements, problem = check_shape(model, config, config_input, input.shape)
  if not elements then
    return nil, problem
  end
  local limit = settings.max_body_bytes
  if elements * (ELEMENT_BYTES[datatype] or 4) > limit then
    return nil, ("input '%s' of model '%s' declares %d elements, over the request limit of "
      .. "%d bytes"):format(input.name, model, elements, limit)
  end
  return check_input_data(model, input, datatype, elements)
end

local function check_outputs(model, config, outputs)
  if outputs == nil then
    return true
  end
  if not is_array(outputs) then
    return nil, "'outputs' must be an array"
  end
  for _, output in ipairs(outputs) do
    if not is_object(output) or type(output.name) ~= "string" then
      return nil, "each entry of 'outputs' must be an object with a 'name'"
    end
    if not find_named(config.output, output.name) then
      return nil, ("model '%s' has no output '%s'; expected: %s"):format(
        model, output.name, names(config.output))
    end
    local params = output.parameters
    if params ~= nil and not is_object(params) then
      return nil, ("output '%s': 'parameters' must be a JSON object"):format(output.name)
    end
    local class_count = params and params.class_count
    if class_count ~= nil and not is_integer(class_count) then
      return nil, ("output '%s': class_count must be a non-negative integer"):format(output.name)
    end
  end
  return true
end

-- Request parameters Triton reads, and the JSON each must be (its parser returns 500 otherwise).
local REQUEST_PARAMETERS = {
  timeout = "count", priority = "count",
  sequence_start = "boolean", sequence_end = "boolean", binary_data_output = "boolean",
  sequence_id = "id",
}
local KIND_NAMES = {
  count = "a non-negative integer", boolean = "true or false", id = "an integer or a string",
}

local function check_request_parameters(params)
  for key, kind in pairs(REQUEST_PARAMETERS) do
    local value = params[key]
    local fits = value == nil
      or (kind == "count" and is_integer(value))
      or (kind == "boolean" and type(value) == "boolean")
      or (kind == "id" and (is_integer(value) or type(value) == "string"))
    if not fits then
      return nil, ("parameter '%s' must be %s"):format(key, KIND_NAMES[kind])
    end
  end
  return true
end

local function check_request(model, config, request, binary_bytes)
  if not is_object(request) then
    return nil, "the request must be a JSON object"
  end
  local inputs = request.inputs
  if not is_array(inputs) or #inputs == 0 then
    return nil, ("the request needs a non-empty 'inputs' array; model '%s' expects: %s"):format(
      model, names(config.input))
  end
  local binary_total = 0
  for _, input in ipairs(inputs) do
    local binary, problem = check_input(model, config, input)
    if not binary then
      return nil, problem
    end
    binary_total = binary_total + binary
  end
  if binary_total ~= binary_bytes then
    return nil, ("the inputs declare %d bytes of binary data; the body carries %d after its "
      .. "JSON header"):format(binary_total, binary_bytes)
  end
  local ok, problem = check_outputs(model, config, request.outputs)
  if not ok then
    return nil, problem
  end
  if request.id ~= nil and type(request.id) ~= "string" then
    return nil, "'id' must be a string"
  end
  if request.parameters ~= nil and not is_object(request.parameters) then
    return nil, "'parameters' must be a JSON object"
  end
  return check_request_parameters(request.parameters or {})
end


-- The model's config as Triton reports it, cached briefly per thread. Failure: nil, status, body.
local configs = {} -- "model/version" -> { config = ..., expires = ... }

local function model_config(model, version)
  local key = model .. "/" .. (version or "")
  local cached = configs[key]
  local now = core.now().sec
  if cached and cached.expires > now then
    return cached.config
  end
  local path = "/v2/models/" .. model .. (version and ("/versions/" .. version) or "") .. "/config"
  local reply
  for _, upstream in ipairs(settings.upstreams_http) do -- replicas: the first that answers
    reply = core.httpclient():get({
      url = "http://" .. upstream .. path,
      timeout = settings.config_timeout_ms,
    })
    if reply ~= nil and reply.status ~= nil and reply.status ~= 0 and reply.status < 500 then
      break
    end
  end
  if reply == nil or reply.status == nil or reply.status == 0 then
    return nil, 503, json.encode_error("the model server is not running right now; retry")
  end
  if reply.status ~= 200 then
    return nil, reply.status, reply.body
  end
  local config = json.decode(reply.body or "")
  if not is_object(config) then
    return nil, 503, json.encode_error("unreadable model config")
  end
  configs[key] = { config = config, expires = now + settings.config_ttl_s }
  return config
end

-- Refusals are answered by the maas_refuse service, which first reads what the client still
-- sends: answering while a client uploads makes it see a broken pipe instead of the answer.
local function reply(txn, status, body)
  txn:set_var("txn.maas_status", status)
  txn:set_var("txn.maas_body", body)
end

local function reject(txn, status, message)
  return reply(txn, status, json.encode_error(message))
end

local DRAIN_CHUNK = 256 * 1024

core.register_service("maas_refuse", "http", function(applet)
  local left = tonumber(applet.headers["content-length"] and applet.headers["content-length"][0])
  while left == nil or left > 0 do
    local chunk = applet:receive(DRAIN_CHUNK)
    if chunk == nil or #chunk == 0 then
      break
    end
    if left then
      left = left - #chunk
    end
  end
  local body = applet:get_var("txn.maas_body") or json.encode_error("refused")
  applet:set_status(tonumber(applet:get_var("txn.maas_status")) or 400)
  applet:add_header("content-type", "application/json")
  applet:add_header("content-length", tostring(#body))
  applet:start_response()
  applet:send(body)
end)

-- Model and version of an inference path: /v2/models/<m>[/versions/<v>]/infer.
local function infer_target(path)
  local model, rest = path:match("^/v2/models/([^/]+)(.*)/infer$")
  if model == nil then
    return nil
  end
  if rest == "" then
    return model, nil
  end
  local version = rest:match("^/versions/([^/]+)$")
  if version == nil then
    return nil
  end
  return model, version
end

-- Length of the JSON header: Triton's binary extension header, else the whole body.
local function json_length(declared, body_length)
  if declared == nil then
    return body_length
  end
  local length = tonumber(declared)
  if not is_integer(length) or length > body_length then
    return nil, ("Inference-Header-Content-Length must be an integer from 0 to the body's %d "
      .. "bytes, got '%s'"):format(body_length, declared)
  end
  return length
end

local function header(txn, name)
  local values = txn.http:req_get_headers()[name]
  return values and values[0] or nil
end

-- Size limits, from the headers alone: the body over its limit, or a JSON part over 3 MiB.
local function check_sizes(txn)
  local declared = header(txn, "content-length")
  if declared == nil then
    return
  end
  local body_length = tonumber(declared) or 0
  if body_length > settings.max_body_bytes then
    return reject(txn, 413, ("the request body is over the limit of %d bytes"):format(
      settings.max_body_bytes))
  end
  local model = infer_target(txn.sf:path())
  if model == nil then
    if body_length > settings.max_other_body_bytes then
      return reject(txn, 413, "only inference requests may carry bodies over 64 KiB")
    end
    return
  end
  local length = json_length(header(txn, "inference-header-content-length"), body_length)
  if length and length > settings.max_json_bytes then
    return reject(txn, 413, ("the JSON part of the request is %d bytes, over the limit of %d; "
      .. "send tensors as binary data (tritonclient does by default)"):format(
        length, settings.max_json_bytes))
  end
end

core.register_action("maas_check_sizes", { "http-req" }, check_sizes, 0)

-- Shared memory with API keys on: a tenant's regions are named "<tenant>~<name>" and their
-- /dev/shm keys "/<tenant>~<name>", so no tenant registers, reads, writes, lists or drops
-- another's. "~" is in no tenant's name and survives URL quoting unchanged (Triton 2.51 does
-- not decode the region's name in its HTTP paths). Names are compared as Triton sees them.
-- Returns the refusal's message for a region that is not the tenant's.
local function foreign_region(tenant, name, what)
  local prefix = tenant .. "~"
  if type(name) ~= "string" or name:sub(1, #prefix) ~= prefix then
    return ("tenant %s may use only its own shared memory: %s '%s' must begin with '%s'"):format(
      tenant, what or "region", tostring(name), prefix)
  end
  return nil
end

local function foreign_region_of_request(tenant, request)
  for _, list in ipairs({ request.inputs, request.outputs or {} }) do
    for _, tensor in ipairs(list) do
      local region = is_object(tensor.parameters) and tensor.parameters.shared_memory_region
      if region ~= nil and region ~= false then
        local problem = foreign_region(tenant, region)
        if problem then
          return problem
        end
      end
    end
  end
  return nil
end

-- Items of a request for the usage meter: its batch size (images, texts) when the model
-- batches, else 1.
local function set_items(txn, config, first_dim)
  local items = 1
  if (tonumber(config.max_batch_size) or 0) > 0 then
    items = first_dim
  end
  if is_integer(items) then
    txn:set_var("txn.maas_items", math.tointeger(items))
  end
end

-- Checks one HTTP inference request for model (and version); answers it (400/411/413 or
-- Triton's own error) when bad, else returns true.
local function check_infer(txn, model, version)
  local declared_length = header(txn, "content-length")
  if declared_length == nil then
    return reject(txn, 411, "an inference request needs a Content-Length header (no chunked bodies)")
  end
  local body_length = tonumber(declared_length) or 0
  local length, problem = json_length(header(txn, "inference-header-content-length"), body_length)
  if not length then
    return reject(txn, 400, problem)
  end
  -- check_sizes has already refused a JSON part over the limit, before the body was read
  local buffered = txn.sf:req_body() or ""
  if #buffered < length then
    return reject(txn, 400, ("the body ended after %d of the %d bytes its JSON header declares"):format(
      #buffered, length))
  end
  local request, decode_error = json.decode(buffered:sub(1, length), MAX_NESTING + 8)
  if request == nil then
    return reject(txn, 400, "the request is not valid JSON: " .. tostring(decode_error))
  end
  local config, status, body = model_config(model, version)
  if not config then
    return reply(txn, status, body)
  end
  local ok, invalid = check_request(model, config, request, body_length - length)
  if not ok then
    return reject(txn, 400, invalid)
  end
  local tenant = txn:get_var("txn.maas_tenant")
  if tenant then
    local region = foreign_region_of_request(tenant, request)
    if region then
      return reject(txn, 403, region)
    end
  end
  if settings.count_items then
    set_items(txn, config, request.inputs[1].shape[1])
  end
  return true
end

-- The model of a gRPC ModelInferRequest: protobuf field 1 (a string), right after the
-- 5-byte frame prefix (compression flag, length) of the first message.
local function grpc_model(body)
  if #body < 7 or body:byte(6) ~= 0x0a then
    return nil
  end
  local length, pos, shift = 0, 7, 0
  while pos <= #body and shift < 35 do
    local byte = body:byte(pos)
    length = length | ((byte & 0x7f) << shift)
    pos = pos + 1
    if byte < 0x80 then
      return body:sub(pos, pos + length - 1)
    end
    shift = shift + 7
  end
  return nil
end

-- Reads a protobuf varint at pos; returns it and the position after it (nil past the end).
local function varint(body, pos, stop)
  local value, shift = 0, 0
  while pos <= stop and shift < 64 do
    local byte = body:byte(pos)
    value = value | ((byte & 0x7f) << shift)
    pos = pos + 1
    if byte < 0x80 then
      return value, pos
    end
    shift = shift + 7
  end
  return nil
end

-- The fields of a protobuf message between pos and stop: number, wire type, value or start,
-- and (for length-delimited ones) end. Stops at the first field it cannot read whole.
local function fields(body, pos, stop)
  return function()
    if pos == nil or pos > stop then
      return nil
    end
    local key, at = varint(body, pos, stop)
    if key == nil then
      return nil
    end
    local number, wire = key >> 3, key & 7
    if wire == 0 then
      local value, after = varint(body, at, stop)
      pos = after
      return value and number, wire, value
    elseif wire == 2 then
      local length, start = varint(body, at, stop)
      if length == nil or start + length - 1 > stop then
        pos = nil
        return nil
      end
      pos = start + length
      return number, wire, start, start + length - 1
    elseif wire == 1 or wire == 5 then
      pos = at + (wire == 1 and 8 or 4)
      return number, wire, at
    end
    return nil
  end
end

-- The string fields `wanted` (number → true) of a message, and the sub-messages of the
-- numbers in `nested` (number → true) as {start, finish}, from a body that may hold only
-- the start of the message: a field the body does not hold whole is skipped by its length,
-- and a field that begins past what the body holds makes it return nil, "unread".
local function read_fields(body, start, finish, wanted, nested)
  local strings, messages, pos = {}, {}, start
  while pos <= finish do
    local key, at = varint(body, pos, #body)
    if key == nil then
      return nil, "unread"
    end
    local number, wire = key >> 3, key & 7
    if wire == 0 then
      local _, after = varint(body, at, #body)
      if after == nil then
        return nil, "unread"
      end
      pos = after
    elseif wire == 2 then
      local length, begins = varint(body, at, #body)
      if length == nil then
        return nil, "unread"
      end
      local ends = begins + length - 1
      if (wanted[number] or nested[number]) and ends > #body then
        return nil, "unread"
      end
      if wanted[number] then
        strings[#strings + 1] = { number, body:sub(begins, ends) }
      elseif nested[number] then
        messages[#messages + 1] = { number, begins, ends }
      end
      pos = ends + 1
    elseif wire == 1 or wire == 5 then
      pos = at + (wire == 1 and 8 or 4)
    else
      return nil, "unreadable"
    end
  end
  return strings, messages
end

-- The shared-memory regions a gRPC ModelInferRequest names: the string_param (3) of each
-- "shared_memory_region" entry of the parameters of its inputs (5, parameters 4) and outputs
-- (6, parameters 2). nil when the gateway cannot read all of them.
local function grpc_regions(body)
  local finish = 5 + ((body:byte(2) << 24) | (body:byte(3) << 16) | (body:byte(4) << 8)
    | body:byte(5))
  local _, tensors = read_fields(body, 6, finish, {}, { [5] = true, [6] = true })
  if tensors == nil then
    return nil
  end
  local regions = {}
  for _, tensor in ipairs(tensors) do
    local parameters_field = tensor[1] == 5 and 4 or 2
    local _, entries = read_fields(body, tensor[2], tensor[3], {}, { [parameters_field] = true })
    if entries == nil then
      return nil
    end
    for _, entry in ipairs(entries) do
      local key, values = read_fields(body, entry[2], entry[3], { [1] = true }, { [2] = true })
      if key == nil then
        return nil
      end
      if key[1] and key[1][2] == "shared_memory_region" and values[1] then
        local value = read_fields(body, values[1][2], values[1][3], { [3] = true }, {})
        regions[#regions + 1] = value and value[1] and value[1][2] or ""
      end
    end
  end
  return regions
end

-- The refusal's message for a gRPC inference request of tenant naming another's region.
local function grpc_foreign_region(tenant, body)
  if #body < 5 or body:byte(1) ~= 0 then
    return ("tenant %s: compressed requests are not accepted with API keys on"):format(tenant)
  end
  local regions = grpc_regions(body)
  if regions == nil then
    return ("tenant %s: the request's inputs and outputs must come before its raw contents "
      .. "and within the first %d bytes"):format(tenant, #body)
  end
  for _, region in ipairs(regions) do
    local problem = foreign_region(tenant, region)
    if problem then
      return problem
    end
  end
  return nil
end

-- A PERMISSION_DENIED answer from maas_grpc_refuse.
local function grpc_forbid(txn, message)
  txn:set_var("txn.maas_grpc_code", "7")
  txn:set_var("txn.maas_grpc_refusal", (message:gsub("[^%w%-_.~ ]", function(c)
    return ("%%%02X"):format(c:byte())
  end):gsub(" ", "%%20")))
end

-- The gRPC shared-memory methods, with keys on: one region of the tenant's, its own key.
core.register_action("maas_check_shm_grpc", { "http-req" }, function(txn)
  local tenant = txn:get_var("txn.maas_tenant")
  local body = txn.sf:req_body() or ""
  local method = txn.sf:path():match("/(%a+)$") or ""
  local fields = #body >= 5 and read_fields(body, 6, #body, { [1] = true, [2] = true }, {})
  local name, key = nil, nil
  for _, field in ipairs(fields or {}) do
    if field[1] == 1 then
      name = field[2]
    elseif field[1] == 2 then
      key = field[2]
    end
  end
  local problem = foreign_region(tenant, name or "")
  if problem == nil and method == "SystemSharedMemoryRegister" then
    problem = foreign_region(tenant, ((key or ""):gsub("^/", "")), "key")
  end
  if problem then
    grpc_forbid(txn, problem)
  end
end, 0)

-- The first dimension of the first input of a gRPC ModelInferRequest (inputs: field 5; their
-- shape: field 3, packed or not), from the part of the body the gateway has read; nil if
-- not there.
local function grpc_first_dim(body)
  local stop = #body
  if stop < 6 or body:byte(1) ~= 0 then
    return nil -- compressed: not read
  end
  for number, wire, start, finish in fields(body, 6, stop) do
    if number == 5 and wire == 2 then
      for inner, inner_wire, value, inner_finish in fields(body, start, finish) do
        if inner == 3 and inner_wire == 2 then
          return (varint(body, value, inner_finish))
        elseif inner == 3 and inner_wire == 0 then
          return value
        end
      end
      return nil
    end
  end
  return nil
end

-- Admission: the model's own backend while its queue has room, else a refusal naming the limit.
-- HAProxy's maxqueue only sends a full server's requests on to the backend's unbounded queue,
-- so the bound on waiting requests is kept here.
local function admit(txn, protocol, model)
  local limit = model and settings.backends[model]
  if not limit then
    return protocol .. "_triton"
  end
  local backend = protocol .. "_model_" .. model
  if (tonumber(txn.f:queue(backend)) or 0) >= limit.queue then
    return nil, limit
  end
  return backend
end

-- Refusals of a model with a limit are answered from that model's own refusal backend, so
-- the gateway's metrics count them per model (rejected 4xx, shed 503).
local function refuse_for(txn, protocol, model)
  if settings.backends[model] then
    txn:set_var("txn.maas_backend", protocol .. "_refused_" .. model)
  end
end

-- The shared-memory API over HTTP, with keys on: one region of the tenant's at a time.
core.register_action("maas_check_shm_http", { "http-req" }, function(txn)
  local tenant = txn:get_var("txn.maas_tenant")
  local path = txn.sf:path()
  local kind, name, call = path:match("^/v2/(%a+)sharedmemory/region/([^/]+)/(%a+)$")
  if name == nil then
    return reject(txn, 403, ("with API keys on, the shared-memory API takes one region of "
      .. "the tenant's at a time: /v2/systemsharedmemory/region/%s~<name>/"
      .. "(register|status|unregister)"):format(tenant))
  end
  local problem = foreign_region(tenant, name)
  if problem == nil and kind == "system" and call == "register" then
    local body = json.decode(txn.sf:req_body() or "", 4)
    local key = is_object(body) and body.key
    problem = foreign_region(tenant, type(key) == "string" and key:gsub("^/", "") or key, "key")
  end
  if problem then
    return reject(txn, 403, problem)
  end
end, 0)

-- The model's backend for an HTTP call, or a 503 naming the limit it is at.
local function admit_http(txn, model)
  local backend, limit = admit(txn, "http", model)
  if backend == nil then
    reply(txn, 503, json.encode_error(limit.message))
    return refuse_for(txn, "http", model)
  end
  txn:set_var("txn.maas_backend", backend)
end

-- One action per HTTP inference request: each Lua action costs tens of microseconds of CPU.
core.register_action("maas_check_and_admit_http", { "http-req" }, function(txn)
  local model, version = infer_target(txn.sf:path())
  if model == nil or txn.sf:method() ~= "POST" then
    return -- Triton answers other routes and methods itself
  end
  if not check_infer(txn, model, version) then
    return refuse_for(txn, "http", model)
  end
  admit_http(txn, model)
end, 0)

-- The generate extension (text in, text out): Triton checks its JSON itself; the gateway
-- admits it against the model's limit (a stream holds its slot until the last token).
core.register_action("maas_admit_generate", { "http-req" }, function(txn)
  local model = txn.sf:path():match("^/v2/models/([^/]+)")
  if model == nil or txn.sf:method() ~= "POST" then
    return
  end
  admit_http(txn, model)
end, 0)

core.register_action("maas_admit_grpc", { "http-req" }, function(txn)
  local body = txn.sf:req_body() or ""
  local model = grpc_model(body)
  if model then
    txn:set_var("txn.maas_model", model) -- for the tenant's model access check
    if settings.count_items then
      local config = model_config(model)
      local first_dim = config and grpc_first_dim(body)
      if first_dim then
        set_items(txn, config, first_dim)
      end
    end
  end
  local tenant = txn:get_var("txn.maas_tenant")
  local problem = tenant and grpc_foreign_region(tenant, body)
  if problem then
    return grpc_forbid(txn, problem)
  end
  local backend, limit = admit(txn, "grpc", model)
  if backend == nil then
    txn:set_var("txn.maas_grpc_refusal", limit.grpc_message) -- percent-encoded, as gRPC wants
    return refuse_for(txn, "grpc", model)
  end
  txn:set_var("txn.maas_backend", backend)
end, 0)

-- A gRPC UNAVAILABLE (or the code in txn.maas_grpc_code) in the trailers-only form: HTTP 200
-- with grpc-status in the headers.
core.register_service("maas_grpc_refuse", "http", function(applet)
  repeat
    local chunk = applet:receive(DRAIN_CHUNK)
  until chunk == nil or #chunk == 0
  applet:set_status(200)
  applet:add_header("content-type", "application/grpc")
  applet:add_header("grpc-status", applet:get_var("txn.maas_grpc_code") or "14")
  applet:add_header("grpc-message", applet:get_var("txn.maas_grpc_refusal") or "")
  applet:start_response()
end)
