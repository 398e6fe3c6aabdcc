using System.Collections.Frozen;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using System.Xml;
using Microsoft.Extensions.Primitives;

namespace Berth.Aws.Protocol;

/// <summary>
/// One AWS Query-protocol service (form body <c>Action=...&amp;Version=...</c>, XML responses): its model,
/// its validator and a handler per operation.
/// </summary>
/// <remarks>
/// A request is first turned into the JSON tree the model describes (<c>Names.member.1</c> becomes
/// <c>Names[0]</c>), so the same <see cref="ShapeValidator"/> and the same generated wire types serve both
/// protocols; the response object is written back as XML by walking the output shape.
/// </remarks>
public sealed class AwsQueryService
{
    public const string ValidationError = "ValidationError";

    private readonly Dictionary<string, Func<IReadOnlyDictionary<string, StringValues>, string, CancellationToken, Task<byte[]>>> _handlers = new(StringComparer.Ordinal);
    private FrozenDictionary<string, Func<IReadOnlyDictionary<string, StringValues>, string, CancellationToken, Task<byte[]>>>? _frozen;

    public AwsQueryService(ServiceModel model)
    {
        Model = model;
        Validator = new ShapeValidator(model, ValidationError);
    }

    public ServiceModel Model { get; }
    public ShapeValidator Validator { get; }

    /// <summary>Set when each region has a service of its own: the Query front door then serves a request with its region's.</summary>
    public RegionalQueryDispatch? Regional { get; set; }

    /// <summary>Binds an operation of the model to a handler. The request is validated against the model first.</summary>
    public AwsQueryService Map<TRequest, TResponse>(string operation, JsonTypeInfo<TRequest> request, JsonTypeInfo<TResponse> response, Func<TRequest, CancellationToken, Task<TResponse>> handler)
    {
        if (!Model.Operations.TryGetValue(operation, out var op))
        {
            throw new ArgumentException($"Operation {operation} is not in the model.", nameof(operation));
        }
        if (_frozen is not null)
        {
            throw new InvalidOperationException("Operations must be mapped before the first request.");
        }
        _handlers[operation] = async (form, requestId, ct) =>
        {
            var body = ReadRequest(op, form);
            if (op.Input is not null)
            {
                try
                {
                    Validator.Validate(op.Input, body);
                }
                catch (AwsException e)
                {
                    // The validator names fields as JSON paths (Names[0]); say them as the Query request did (Names.member.1).
                    throw new AwsException(ValidationError, QueryPath(e.Message), e.StatusCode);
                }
            }
            TRequest req;
            try
            {
                req = body.Deserialize(request)!;
            }
            catch (JsonException e)
            {
                throw new AwsException(ValidationError, $"The request could not be read: {e.Message}");
            }
            var result = await handler(req, ct).ConfigureAwait(false);
            var json = JsonSerializer.SerializeToElement(result, response);
            return WriteResponse(op, json, requestId);
        };
        return this;
    }

    public bool IsMapped(string operation) => _handlers.ContainsKey(operation);

    internal Func<IReadOnlyDictionary<string, StringValues>, string, CancellationToken, Task<byte[]>>? Find(string operation)
    {
        _frozen ??= _handlers.ToFrozenDictionary(StringComparer.Ordinal);
        return _frozen.GetValueOrDefault(operation);
    }

    /// <summary>Turns the form parameters (less Action and Version) into the JSON the input shape describes.</summary>
    internal JsonElement ReadRequest(OperationModel op, IReadOnlyDictionary<string, StringValues> form)
    {
        var root = new JsonObject();
        if (op.Input is null)
        {
            return JsonSerializer.SerializeToElement(root, QueryJsonContext.Default.JsonObject);
        }
        var input = Model.Shapes[op.Input];
        // Sorted so list elements arrive in a stable order; indexes are placed explicitly anyway.
        foreach (var (key, values) in form.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (key is "Action" or "Version")
            {
                continue;
            }
            if (values.Count > 1)
            {
                throw new AwsException(ValidationError, $"Parameter '{key}' is given more than once.");
            }
            var segments = key.Split('.');
            Place(root, input, segments, 0, values.ToString(), key);
        }
        return JsonSerializer.SerializeToElement(Compact(root), QueryJsonContext.Default.JsonNode);
    }

    private void Place(JsonObject target, ShapeModel structure, string[] segments, int at, string value, string key)
    {
        var name = segments[at];
        if (!structure.Members.TryGetValue(name, out var memberShapeName))
        {
            throw new AwsException(ValidationError, $"Unknown parameter '{key}'.");
        }
        var shape = Model.Shapes[memberShapeName];
        if (at == segments.Length - 1)
        {
            if (shape.Type is "list" && value.Length == 0)
            {
                target[name] ??= new JsonObject(); // an empty list: botocore sends "Name=" for []
                return;
            }
            if (shape.Type is "structure" or "list" or "map")
            {
                throw new AwsException(ValidationError, $"Invalid parameter '{key}': a {shape.Type} needs nested parameters ({key}.{(shape.Type == "structure" ? "Member" : shape.Type == "list" ? "member.1" : "entry.1.key")}).");
            }
            target[name] = Scalar(shape, value, key);
            return;
        }
        switch (shape.Type)
        {
            case "structure":
                {
                    var child = target[name] as JsonObject ?? new JsonObject();
                    target[name] = child;
                    Place(child, shape, segments, at + 1, value, key);
                    break;
                }
            case "list":
                {
                    // Lists are kept as objects keyed by 1-based index until Compact turns them into arrays.
                    if (segments[at + 1] != "member" || at + 2 >= segments.Length || !TryIndex(segments[at + 2], out var index))
                    {
                        throw new AwsException(ValidationError, $"Invalid parameter '{key}': list elements are named {string.Join('.', segments[..(at + 1)])}.member.N (N from 1).");
                    }
                    var list = target[name] as JsonObject ?? new JsonObject();
                    target[name] = list;
                    var element = Model.Shapes[shape.Member!];
                    var slot = "#" + index.ToString("D6", CultureInfo.InvariantCulture);
                    if (at + 3 == segments.Length)
                    {
                        if (element.Type is "structure" or "list" or "map")
                        {
                            throw new AwsException(ValidationError, $"Invalid parameter '{key}': the element is a {element.Type} and needs nested parameters.");
                        }
                        list[slot] = Scalar(element, value, key);
                    }
                    else if (element.Type == "structure")
                    {
                        var child = list[slot] as JsonObject ?? new JsonObject();
                        list[slot] = child;
                        Place(child, element, segments, at + 3, value, key);
                    }
                    else
                    {
                        throw new AwsException(ValidationError, $"Unknown parameter '{key}'.");
                    }
                    break;
                }
            case "map":
                {
                    if (segments.Length != at + 4 || segments[at + 1] != "entry" || !TryIndex(segments[at + 2], out var index) || segments[at + 3] is not ("key" or "value"))
                    {
                        throw new AwsException(ValidationError, $"Invalid parameter '{key}': map entries are named {string.Join('.', segments[..(at + 1)])}.entry.N.key / .value.");
                    }
                    var map = target[name] as JsonObject ?? new JsonObject();
                    target[name] = map;
                    var slot = "@" + index.ToString("D6", CultureInfo.InvariantCulture);
                    var entry = map[slot] as JsonObject ?? new JsonObject();
                    map[slot] = entry;
                    entry[segments[at + 3]] = segments[at + 3] == "key" ? value : Scalar(Model.Shapes[shape.Value!], value, key);
                    break;
                }
            default:
                throw new AwsException(ValidationError, $"Unknown parameter '{key}'.");
        }
    }

    private static bool TryIndex(string s, out int index)
        => int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out index) && index is >= 1 and <= 100_000;

    private static JsonNode Scalar(ShapeModel shape, string value, string key)
    {
        switch (shape.Type)
        {
            case "integer":
                return int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var i)
                    ? JsonValue.Create(i)
                    : throw new AwsException(ValidationError, $"Invalid parameter '{key}': '{Truncate(value)}' is not an integer.");
            case "long":
                return long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)
                    ? JsonValue.Create(l)
                    : throw new AwsException(ValidationError, $"Invalid parameter '{key}': '{Truncate(value)}' is not an integer.");
            case "double":
            case "float":
                return double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d)
                    ? JsonValue.Create(d)
                    : throw new AwsException(ValidationError, $"Invalid parameter '{key}': '{Truncate(value)}' is not a number.");
            case "boolean":
                return value switch
                {
                    "true" => JsonValue.Create(true),
                    "false" => JsonValue.Create(false),
                    _ => throw new AwsException(ValidationError, $"Invalid parameter '{key}': '{Truncate(value)}' is not true or false."),
                };
            case "timestamp":
                return DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out _)
                    ? JsonValue.Create(value)
                    : throw new AwsException(ValidationError, $"Invalid parameter '{key}': '{Truncate(value)}' is not a timestamp.");
            default:
                return JsonValue.Create(value);
        }
    }

    /// <summary>Replaces the index-keyed objects of lists ("#000001") and maps ("@000001") by arrays and maps.</summary>
    private static JsonNode? Compact(JsonNode? node)
    {
        if (node is not JsonObject obj)
        {
            return node?.DeepClone();
        }
        var props = obj.ToList();
        if (props.Count > 0 && props.All(p => p.Key.StartsWith('#')))
        {
            var array = new JsonArray();
            foreach (var p in props.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                array.Add(Compact(p.Value));
            }
            return array;
        }
        if (props.Count > 0 && props.All(p => p.Key.StartsWith('@')))
        {
            var map = new JsonObject();
            foreach (var p in props.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                var entry = (JsonObject)p.Value!;
                var k = entry["key"]?.GetValue<string>() ?? throw new AwsException(ValidationError, "A map entry has no key.");
                map[k] = Compact(entry["value"]);
            }
            return map;
        }
        var copy = new JsonObject();
        foreach (var p in props)
        {
            // An empty object standing for "Name=" (an empty list) stays an empty array.
            copy[p.Key] = p.Value is JsonObject { Count: 0 } ? new JsonArray() : Compact(p.Value);
        }
        return copy;
    }

    /// <summary>Writes <c>&lt;OpResponse&gt;&lt;OpResult&gt;...&lt;/OpResult&gt;&lt;ResponseMetadata/&gt;&lt;/OpResponse&gt;</c>.</summary>
    internal byte[] WriteResponse(OperationModel op, JsonElement result, string requestId)
    {
        using var ms = new MemoryStream();
        using (var w = XmlWriter.Create(ms, new XmlWriterSettings { Encoding = new UTF8Encoding(false), Indent = false }))
        {
            w.WriteStartElement(op.Name + "Response", Model.XmlNamespace);
            if (op.ResultWrapper is { } wrapper)
            {
                w.WriteStartElement(wrapper);
                if (op.Output is not null)
                {
                    WriteMembers(w, Model.Shapes[op.Output], result);
                }
                w.WriteEndElement();
            }
            w.WriteStartElement("ResponseMetadata");
            w.WriteElementString("RequestId", requestId);
            w.WriteEndElement();
            w.WriteEndElement();
        }
        return ms.ToArray();
    }

    private void WriteMembers(XmlWriter w, ShapeModel structure, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            return;
        }
        foreach (var (name, shapeName) in structure.Members)
        {
            if (value.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null)
            {
                w.WriteStartElement(name);
                WriteValue(w, Model.Shapes[shapeName], v);
                w.WriteEndElement();
            }
        }
    }

    private void WriteValue(XmlWriter w, ShapeModel shape, JsonElement v)
    {
        switch (shape.Type)
        {
            case "structure":
                WriteMembers(w, shape, v);
                break;
            case "list":
                var element = Model.Shapes[shape.Member!];
                foreach (var item in v.EnumerateArray())
                {
                    w.WriteStartElement("member");
                    WriteValue(w, element, item);
                    w.WriteEndElement();
                }
                break;
            case "map":
                var valueShape = Model.Shapes[shape.Value!];
                foreach (var p in v.EnumerateObject())
                {
                    w.WriteStartElement("entry");
                    w.WriteElementString("key", p.Name);
                    w.WriteStartElement("value");
                    WriteValue(w, valueShape, p.Value);
                    w.WriteEndElement();
                    w.WriteEndElement();
                }
                break;
            case "timestamp":
                var at = v.ValueKind == JsonValueKind.Number
                    ? DateTimeOffset.FromUnixTimeMilliseconds((long)Math.Round(v.GetDouble() * 1000))
                    : DateTimeOffset.Parse(v.GetString()!, CultureInfo.InvariantCulture);
                w.WriteString(at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture));
                break;
            case "boolean":
                w.WriteString(v.GetBoolean() ? "true" : "false");
                break;
            default:
                w.WriteString(v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText());
                break;
        }
    }

    /// <summary>The Query protocol's error document.</summary>
    public static byte[] WriteError(string xmlNamespace, int status, string code, string message, string requestId)
    {
        using var ms = new MemoryStream();
        using (var w = XmlWriter.Create(ms, new XmlWriterSettings { Encoding = new UTF8Encoding(false) }))
        {
            w.WriteStartElement("ErrorResponse", xmlNamespace);
            w.WriteStartElement("Error");
            w.WriteElementString("Type", status >= 500 ? "Receiver" : "Sender");
            w.WriteElementString("Code", code);
            w.WriteElementString("Message", message);
            w.WriteEndElement();
            w.WriteElementString("RequestId", requestId);
            w.WriteEndElement();
        }
        return ms.ToArray();
    }

    private static string Truncate(string s) => s.Length <= 64 ? s : s[..64] + "...";

    internal static string QueryPath(string message)
        => System.Text.RegularExpressions.Regex.Replace(message, @"\[(\d+)\]",
            m => ".member." + (int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) + 1).ToString(CultureInfo.InvariantCulture),
            System.Text.RegularExpressions.RegexOptions.None, TimeSpan.FromMilliseconds(100));
}

[System.Text.Json.Serialization.JsonSerializable(typeof(JsonObject))]
[System.Text.Json.Serialization.JsonSerializable(typeof(JsonNode))]
internal sealed partial class QueryJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
