using System.Text.Json;
using System.Text.Json.Serialization;

namespace Berth.Agent;

/// <summary>What an agent remembers about itself across restarts: its id and its container instance ARN.</summary>
internal sealed class AgentIdentity
{
    [JsonPropertyName("agentId")]
    public string AgentId { get; set; } = Guid.NewGuid().ToString("N");

    [JsonPropertyName("containerInstanceArn")]
    public string? ContainerInstanceArn { get; set; }

    /// <summary>The secret the server issued at first registration; proves this agent owns the instance.</summary>
    [JsonPropertyName("agentSecret")]
    public string? AgentSecret { get; set; }

    public static AgentIdentity LoadOrCreate(string directory)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "agent.json");
        if (File.Exists(path))
        {
            var loaded = JsonSerializer.Deserialize(File.ReadAllBytes(path), AgentJsonContext.Default.AgentIdentity);
            if (loaded is { AgentId.Length: > 0 })
            {
                return loaded;
            }
        }
        var fresh = new AgentIdentity();
        fresh.Save(directory);
        return fresh;
    }

    public void Save(string directory)
    {
        // Write-then-rename: a crash leaves the old file or the new one, never half of one.
        var path = Path.Combine(directory, "agent.json");
        var tmp = path + ".tmp";
        File.WriteAllBytes(tmp, JsonSerializer.SerializeToUtf8Bytes(this, AgentJsonContext.Default.AgentIdentity));
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
