using System.Text.Json;

namespace Berth.Aws.Protocol;

/// <summary>
/// Checks a request body against the model before it is bound to a wire type, so that every
/// structural error names the field it is about ("containerDefinitions[0].portMappings[1].hostPort").
/// </summary>
/// <remarks>
/// Type errors answer SerializationException (what AWS's JSON services answer for a body that does
/// not fit the model); constraint errors (required, range, length, enum, pattern) answer the
/// service's validation error type.
/// </remarks>
public sealed class ShapeValidator(ServiceModel model, string validationErrorType = "InvalidParameterException")
{
    private const int MaxDepth = 64;

    public void Validate(string shapeName, JsonElement value) => Check(model.Shapes[shapeName], value, "", 0);

    private void Check(ShapeModel shape, JsonElement value, string path, int depth)
    {
        if (depth > MaxDepth)
        {
            throw Type(path, "is nested too deeply");
        }
        if (shape.Document)
        {
            return;
        }
        switch (shape.Type)
        {
            case "structure":
                CheckStructure(shape, value, path, depth);
                break;
            case "list":
                if (value.ValueKind != JsonValueKind.Array)
                {
                    throw Type(path, "must be a list");
                }
                var count = value.GetArrayLength();
                CheckLength(shape, count, path, "items");
                var element = model.Shapes[shape.Member!];
                var i = 0;
                foreach (var item in value.EnumerateArray())
                {
                    var itemPath = $"{path}[{i++}]";
                    if (item.ValueKind == JsonValueKind.Null)
                    {
                        throw Invalid(itemPath, "must not be null");
                    }
                    Check(element, item, itemPath, depth + 1);
                }
                break;
            case "map":
                if (value.ValueKind != JsonValueKind.Object)
                {
                    throw Type(path, "must be a map");
                }
                var entries = 0;
                var keyShape = model.Shapes[shape.Key!];
                var valueShape = model.Shapes[shape.Value!];
                foreach (var p in value.EnumerateObject())
                {
                    entries++;
                    var entryPath = $"{path}.{p.Name}";
                    CheckString(keyShape, p.Name, entryPath);
                    if (p.Value.ValueKind == JsonValueKind.Null)
                    {
                        throw Invalid(entryPath, "must not be null");
                    }
                    Check(valueShape, p.Value, entryPath, depth + 1);
                }
                CheckLength(shape, entries, path, "entries");
                break;
            case "string":
                if (value.ValueKind != JsonValueKind.String)
                {
                    throw Type(path, "must be a string");
                }
                CheckString(shape, value.GetString()!, path);
                break;
            case "integer":
            case "long":
                if (value.ValueKind != JsonValueKind.Number)
                {
                    throw Type(path, "must be an integer");
                }
                var fits = shape.Type == "integer" ? value.TryGetInt32(out _) : value.TryGetInt64(out _);
                if (!fits)
                {
                    throw Type(path, shape.Type == "integer" ? "must be a 32-bit integer" : "must be a 64-bit integer");
                }
                CheckRange(shape, value.GetDouble(), path);
                break;
            case "double":
            case "float":
                if (value.ValueKind != JsonValueKind.Number)
                {
                    throw Type(path, "must be a number");
                }
                CheckRange(shape, value.GetDouble(), path);
                break;
            case "boolean":
                if (value.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                {
                    throw Type(path, "must be a boolean");
                }
                break;
            case "timestamp":
                if (value.ValueKind == JsonValueKind.Number)
                {
                    break;
                }
                if (value.ValueKind == JsonValueKind.String && DateTimeOffset.TryParse(value.GetString(), System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out _))
                {
                    break;
                }
                throw Type(path, "must be a timestamp");
            case "blob":
                if (value.ValueKind != JsonValueKind.String || DecodedLength(value.GetString()!) is not { } decoded)
                {
                    throw Type(path, "must be base64-encoded binary");
                }
                CheckLength(shape, decoded, path, "bytes");
                break;
            default:
                break;
        }
    }

    private void CheckStructure(ShapeModel shape, JsonElement value, string path, int depth)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Type(path, "must be a structure");
        }
        foreach (var p in value.EnumerateObject())
        {
            var memberPath = path.Length == 0 ? p.Name : $"{path}.{p.Name}";
            if (!shape.Members.TryGetValue(p.Name, out var memberShape))
            {
                throw new AwsException("SerializationException", $"Unknown field '{memberPath}'.");
            }
            if (p.Value.ValueKind == JsonValueKind.Null)
            {
                continue; // null is the same as absent; required members are checked below
            }
            Check(model.Shapes[memberShape], p.Value, memberPath, depth + 1);
        }
        foreach (var required in shape.Required)
        {
            if (!value.TryGetProperty(required, out var v) || v.ValueKind == JsonValueKind.Null)
            {
                throw Invalid(path.Length == 0 ? required : $"{path}.{required}", "is required but was not provided");
            }
        }
    }

    private void CheckString(ShapeModel shape, string s, string path)
    {
        if (shape.Enum is { } allowed && !allowed.Contains(s))
        {
            throw Invalid(path, $"has the value '{Truncate(s)}', which is not one of: {string.Join(", ", allowed.Order(StringComparer.Ordinal))}");
        }
        CheckLength(shape, s.Length, path, "characters");
        if (shape.Pattern is { } pattern)
        {
            bool matches;
            try
            {
                matches = pattern.IsMatch(s);
            }
            catch (System.Text.RegularExpressions.RegexMatchTimeoutException)
            {
                matches = false;
            }
            if (!matches)
            {
                throw Invalid(path, $"has the value '{Truncate(s)}', which does not match the pattern {pattern.ToString()[4..^2]}");
            }
        }
    }

    private void CheckLength(ShapeModel shape, int length, string path, string unit)
    {
        if (shape.Min is { } min && length < min)
        {
            throw Invalid(path, $"must have at least {min} {unit}");
        }
        if (shape.Max is { } max && length > max)
        {
            throw Invalid(path, $"must have at most {max} {unit}");
        }
    }

    private void CheckRange(ShapeModel shape, double v, string path)
    {
        if (shape.Min is { } min && v < min)
        {
            throw Invalid(path, $"must be at least {min}");
        }
        if (shape.Max is { } max && v > max)
        {
            throw Invalid(path, $"must be at most {max}");
        }
    }

    /// <summary>The number of bytes the base64 text decodes to (padding excluded), or null when it is not base64.</summary>
    private static int? DecodedLength(string s)
    {
        var buffer = new byte[(s.Length * 3 / 4) + 3];
        return Convert.TryFromBase64String(s, buffer, out var n) ? n : null;
    }

    private static string Truncate(string s) => s.Length <= 64 ? s : s[..64] + "...";

    private AwsException Invalid(string path, string what) => new(validationErrorType, $"Invalid parameter '{Display(path)}': the value {what}.");

    private static AwsException Type(string path, string what) => new("SerializationException", $"Invalid parameter '{Display(path)}': the value {what}.");

    private static string Display(string path) => path.Length == 0 ? "(request body)" : path;
}
