using System.Collections.Frozen;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Berth.Aws.Protocol;

/// <summary>The parts of an AWS service model the protocol layer needs: operations and shape constraints.</summary>
/// <remarks>Loaded from the shapes.json that eng/generate_aws_models.py extracts from botocore.</remarks>
public sealed class ServiceModel
{
    public string TargetPrefix { get; }
    public string Protocol { get; }
    public FrozenDictionary<string, OperationModel> Operations { get; }
    public FrozenDictionary<string, ShapeModel> Shapes { get; }

    /// <summary>The model's apiVersion; Query-protocol requests name it in their Version parameter.</summary>
    public string ApiVersion { get; private init; } = "";

    /// <summary>The XML namespace of Query-protocol responses; empty for JSON services.</summary>
    public string XmlNamespace { get; private init; } = "";

    private ServiceModel(string targetPrefix, string protocol, FrozenDictionary<string, OperationModel> operations, FrozenDictionary<string, ShapeModel> shapes)
    {
        TargetPrefix = targetPrefix;
        Protocol = protocol;
        Operations = operations;
        Shapes = shapes;
    }

    /// <summary>
    /// The service name a SigV4 credential scope must carry for this API (botocore's metadata.signingName,
    /// else its endpointPrefix): "ecs", "ecr", "elasticloadbalancing", "logs", "application-autoscaling".
    /// </summary>
    public string SigningName { get; private init; } = "";

    private static string KnownSigningName(string service) => service switch
    {
        "Ecs" => "ecs",
        "Ecr" => "ecr",
        "Elbv2" => "elasticloadbalancing",
        "Logs" => "logs",
        "ApplicationAutoScaling" or "AutoScaling" => "application-autoscaling",
        _ => service.ToLowerInvariant(),
    };

    /// <summary>Loads the embedded model of one generated service ("Ecs", "Ecr").</summary>
    public static ServiceModel Load(string service)
    {
        var asm = typeof(ServiceModel).Assembly;
        var resource = $"{service}/shapes.json";
        using var stream = asm.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"Embedded model '{resource}' is missing.");
        using var doc = JsonDocument.Parse(stream);
        var root = doc.RootElement;
        var shapes = new Dictionary<string, ShapeModel>(StringComparer.Ordinal);
        foreach (var s in root.GetProperty("shapes").EnumerateObject())
        {
            shapes[s.Name] = ShapeModel.Parse(s.Name, s.Value);
        }
        var ops = new Dictionary<string, OperationModel>(StringComparer.Ordinal);
        foreach (var o in root.GetProperty("operations").EnumerateObject())
        {
            ops[o.Name] = new OperationModel(
                o.Name,
                o.Value.TryGetProperty("input", out var i) && i.ValueKind == JsonValueKind.String ? i.GetString() : null,
                o.Value.TryGetProperty("output", out var ou) && ou.ValueKind == JsonValueKind.String ? ou.GetString() : null)
            {
                ResultWrapper = o.Value.TryGetProperty("resultWrapper", out var rw) ? rw.GetString() : null,
            };
        }
        return new ServiceModel(
            root.TryGetProperty("targetPrefix", out var tp) && tp.ValueKind == JsonValueKind.String ? tp.GetString()! : "",
            root.GetProperty("protocol").GetString()!,
            ops.ToFrozenDictionary(StringComparer.Ordinal),
            shapes.ToFrozenDictionary(StringComparer.Ordinal))
        {
            ApiVersion = root.TryGetProperty("apiVersion", out var av) && av.ValueKind == JsonValueKind.String ? av.GetString()! : "",
            XmlNamespace = root.TryGetProperty("xmlNamespace", out var xn) && xn.ValueKind == JsonValueKind.String ? xn.GetString()! : "",
            SigningName = root.TryGetProperty("signingName", out var sn) && sn.ValueKind == JsonValueKind.String ? sn.GetString()! : KnownSigningName(service),
        };
    }
}

public sealed record OperationModel(string Name, string? Input, string? Output)
{
    /// <summary>Query protocol: the element that wraps the output inside the response element.</summary>
    public string? ResultWrapper { get; init; }
}

public sealed class ShapeModel
{
    public required string Name { get; init; }
    public required string Type { get; init; }
    public FrozenDictionary<string, string> Members { get; init; } = FrozenDictionary<string, string>.Empty;
    /// <summary>Required members in model order, so the first missing one reported is the one the docs list first.</summary>
    public IReadOnlyList<string> Required { get; init; } = [];
    public FrozenSet<string>? Enum { get; init; }
    public double? Min { get; init; }
    public double? Max { get; init; }
    public Regex? Pattern { get; init; }
    public string? Member { get; init; }
    public string? Key { get; init; }
    public string? Value { get; init; }
    public bool Document { get; init; }
    /// <summary>For exception shapes of Query services: the wire error code and HTTP status.</summary>
    public string? ErrorCode { get; init; }
    public int? ErrorStatus { get; init; }

    internal static ShapeModel Parse(string name, JsonElement e)
    {
        Regex? pattern = null;
        if (e.TryGetProperty("pattern", out var p))
        {
            try
            {
                // Model patterns must match the whole value.
                pattern = new Regex("^(?:" + p.GetString() + ")$", RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(100));
            }
            catch (ArgumentException)
            {
                pattern = null; // a pattern .NET cannot express is not enforced
            }
        }
        return new ShapeModel
        {
            Name = name,
            Type = e.GetProperty("type").GetString()!,
            Members = e.TryGetProperty("members", out var m)
                ? m.EnumerateObject().ToFrozenDictionary(x => x.Name, x => x.Value.GetString()!, StringComparer.Ordinal)
                : FrozenDictionary<string, string>.Empty,
            Required = e.TryGetProperty("required", out var r)
                ? r.EnumerateArray().Select(x => x.GetString()!).ToArray()
                : [],
            Enum = e.TryGetProperty("enum", out var en) ? en.EnumerateArray().Select(x => x.GetString()!).ToFrozenSet(StringComparer.Ordinal) : null,
            Min = e.TryGetProperty("min", out var mn) ? mn.GetDouble() : null,
            Max = e.TryGetProperty("max", out var mx) ? mx.GetDouble() : null,
            Pattern = pattern,
            Member = e.TryGetProperty("member", out var mem) ? mem.GetString() : null,
            Key = e.TryGetProperty("key", out var k) ? k.GetString() : null,
            Value = e.TryGetProperty("value", out var v) ? v.GetString() : null,
            Document = e.TryGetProperty("document", out var d) && d.GetBoolean(),
            ErrorCode = e.TryGetProperty("error", out var er) && er.TryGetProperty("code", out var ec) ? ec.GetString() : null,
            ErrorStatus = e.TryGetProperty("error", out var er2) && er2.TryGetProperty("httpStatusCode", out var es) ? es.GetInt32() : null,
        };
    }
}
