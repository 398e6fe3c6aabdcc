using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Berth.Aws.Auth;

/// <summary>What a credential may do: everything, or only the calls that read (Describe*, List*, Get*, BatchGet*, registry pulls).</summary>
public static class Permissions
{
    public const string Admin = "admin";
    public const string ReadOnly = "read-only";

    public static bool IsKnown(string? p) => p is Admin or ReadOnly;

    /// <summary>True when <paramref name="operation"/> only reads, as AWS's ReadOnlyAccess policies count it.</summary>
    public static bool IsReadOperation(string operation)
        => operation.StartsWith("Describe", StringComparison.Ordinal)
            || operation.StartsWith("List", StringComparison.Ordinal)
            || operation.StartsWith("Get", StringComparison.Ordinal)
            || operation.StartsWith("BatchGet", StringComparison.Ordinal)
            || operation == "BatchCheckLayerAvailability";

    public static bool Allows(string permissions, string operation)
        => permissions == Admin || (permissions == ReadOnly && IsReadOperation(operation));
}

/// <summary>One access key Berth accepts: its id, secret, the user name it acts as and what it may do.</summary>
public sealed record AwsCredential
{
    public required string AccessKeyId { get; init; }
    public required string SecretAccessKey { get; init; }
    public required string Name { get; init; }
    public string Permissions { get; init; } = Auth.Permissions.Admin;
    public DateTimeOffset Created { get; init; }
    /// <summary>When set, requests with this key must carry it as X-Amz-Security-Token (a session credential).</summary>
    public string? SessionToken { get; init; }

    private const string Alphabet32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    private const string SecretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// <summary>A new credential with an AKIA... id (20 characters) and a 40-character secret, as IAM makes them.</summary>
    public static AwsCredential Generate(string name, string permissions, DateTimeOffset now, bool withSessionToken = false)
        => new()
        {
            AccessKeyId = (withSessionToken ? "ASIA" : "AKIA") + RandomNumberGenerator.GetString(Alphabet32, 16),
            SecretAccessKey = RandomNumberGenerator.GetString(SecretAlphabet, 40),
            Name = name,
            Permissions = permissions,
            Created = now,
            SessionToken = withSessionToken ? Convert.ToBase64String(RandomNumberGenerator.GetBytes(96)) : null,
        };
}

/// <summary>
/// DATA/credentials.json: the credentials a server accepts. Written whole to a temporary file with mode
/// 0600 and renamed over the old one, so a reader never sees half a file and nobody else can read secrets.
/// </summary>
public static class CredentialFile
{
    public const string FileName = "credentials.json";

    public static string PathIn(string dataDirectory) => Path.Combine(dataDirectory, FileName);

    public static IReadOnlyList<AwsCredential> Load(string path)
    {
        if (!File.Exists(path))
        {
            return [];
        }
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        if (stream.Length == 0)
        {
            return [];
        }
        try
        {
            return JsonSerializer.Deserialize(stream, CredentialJson.Default.CredentialDocument)?.Credentials ?? [];
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a valid credentials file: {e.Message}", e);
        }
    }

    public static void Save(string path, IReadOnlyList<AwsCredential> credentials)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var temp = path + "." + Environment.ProcessId + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        using (var stream = new FileStream(temp, options))
        {
            JsonSerializer.Serialize(stream, new CredentialDocument { Credentials = [.. credentials] }, CredentialJson.Default.CredentialDocument);
            stream.Flush(flushToDisk: true);
        }
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        File.Move(temp, path, overwrite: true);
    }
}

public sealed class CredentialDocument
{
    public List<AwsCredential> Credentials { get; init; } = [];
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(CredentialDocument))]
internal sealed partial class CredentialJson : JsonSerializerContext;
