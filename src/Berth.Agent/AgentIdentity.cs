using System.Text.Json;
using System.Text.Json.Serialization;

namespace Berth.Agent;

/// <summary>
/// What an agent remembers about itself across restarts: its id, its container instance ARN and the secret the
/// server issued at its first registration. Kept in DIR/agent.json, or only in memory when there is no directory
/// (simulated instances without --data).
/// </summary>
internal sealed class AgentIdentity
{
    public const string FileName = "agent.json";

    [JsonPropertyName("agentId")]
    public string AgentId { get; set; } = Guid.NewGuid().ToString("N");

    [JsonPropertyName("containerInstanceArn")]
    public string? ContainerInstanceArn { get; set; }

    [JsonPropertyName("agentSecret")]
    public string? AgentSecret { get; set; }

    /// <summary>Where it is kept; null: in memory only.</summary>
    [JsonIgnore]
    public string? Directory { get; private set; }

    [JsonIgnore]
    public string Describe => Directory is null ? "(in memory)" : Path.Combine(Directory, FileName);

    public static AgentIdentity InMemory() => new();

    public static AgentIdentity LoadOrCreate(string directory)
    {
        System.IO.Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, FileName);
        if (File.Exists(path))
        {
            var loaded = JsonSerializer.Deserialize(File.ReadAllBytes(path), AgentJsonContext.Default.AgentIdentity);
            if (loaded is { AgentId.Length: > 0 })
            {
                loaded.Directory = directory;
                return loaded;
            }
        }
        var fresh = new AgentIdentity { Directory = directory };
        fresh.Save();
        return fresh;
    }

    public void Save()
    {
        if (Directory is null)
        {
            return;
        }
        // Write-then-rename: a crash leaves the old file or the new one, never half of one.
        var path = Path.Combine(Directory, FileName);
        var tmp = path + ".tmp";
        using (var f = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            f.Write(JsonSerializer.SerializeToUtf8Bytes(this, AgentJsonContext.Default.AgentIdentity));
            f.Flush(flushToDisk: true); // the secret must survive a power cut once the server has issued it
        }
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite); // it holds a secret
        }
        File.Move(tmp, path, overwrite: true);
    }
}

[JsonSerializable(typeof(AgentIdentity))]
[JsonSerializable(typeof(HealthProbe))]
internal sealed partial class AgentJsonContext : JsonSerializerContext;

internal sealed class HealthProbe
{
    [JsonPropertyName("agentPort")]
    public int AgentPort { get; set; }
}
