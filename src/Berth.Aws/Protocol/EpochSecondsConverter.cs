using System.Text.Json;
using System.Text.Json.Serialization;

namespace Berth.Aws.Protocol;

/// <summary>AWS JSON protocols carry timestamps as fractional epoch seconds.</summary>
public sealed class EpochSecondsConverter : JsonConverter<DateTimeOffset?>
{
    public override bool HandleNull => false;

    public override DateTimeOffset? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Number)
        {
            var seconds = reader.GetDouble();
            return DateTimeOffset.FromUnixTimeMilliseconds((long)Math.Round(seconds * 1000));
        }
        if (reader.TokenType == JsonTokenType.String && DateTimeOffset.TryParse(reader.GetString(), System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var parsed))
        {
            return parsed;
        }
        throw new JsonException("Expected a timestamp.");
    }

    public override void Write(Utf8JsonWriter writer, DateTimeOffset? value, JsonSerializerOptions options)
    {
        if (value is { } v)
        {
            writer.WriteNumberValue(Math.Round(v.ToUnixTimeMilliseconds() / 1000.0, 3));
        }
        else
        {
            writer.WriteNullValue();
        }
    }
}
