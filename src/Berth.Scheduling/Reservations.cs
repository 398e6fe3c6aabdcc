using Berth.Aws.Ecs;

namespace Berth.Scheduling;

/// <summary>What a task reserves on its instance, computed the way ECS does for the EC2 launch type.</summary>
public static class Reservations
{
    public static TaskReservation For(TaskDefinition definition, TaskOverride? overrides = null)
    {
        var containers = definition.ContainerDefinitions ?? [];
        var byName = (overrides?.ContainerOverrides ?? []).Where(o => o.Name is not null)
            .GroupBy(o => o.Name!).ToDictionary(g => g.Key, g => g.Last(), StringComparer.Ordinal);
        int ContainerCpu(ContainerDefinition c) => (c.Name is not null && byName.TryGetValue(c.Name, out var o) ? o.Cpu : null) ?? c.Cpu ?? 0;
        long ContainerMemory(ContainerDefinition c)
        {
            var o = c.Name is not null ? byName.GetValueOrDefault(c.Name) : null;
            return o?.Memory ?? o?.MemoryReservation ?? c.Memory ?? c.MemoryReservation ?? 0;
        }
        var cpu = ParseUnits(overrides?.Cpu ?? definition.Cpu) ?? containers.Sum(ContainerCpu);
        var memory = ParseUnits(overrides?.Memory ?? definition.Memory) ?? containers.Sum(ContainerMemory);
        var host = string.Equals(definition.NetworkMode, "host", StringComparison.Ordinal);
        var ports = new List<int>();
        // awsvpc: each task has its own address, so its ports take nothing from the host; none: no ports at all.
        var ownAddress = definition.NetworkMode is "awsvpc" or "none";
        foreach (var c in ownAddress ? [] : containers)
        {
            foreach (var m in c.PortMappings ?? [])
            {
                var p = m.HostPort is > 0 ? m.HostPort.Value : host && m.ContainerPort is > 0 ? m.ContainerPort.Value : 0;
                if (p > 0)
                {
                    ports.Add(p);
                }
            }
        }
        return new TaskReservation(cpu, memory, ports);
    }

    /// <summary>Task-level cpu/memory strings: "256", "1024", or "1 vCPU" / "2 GB" as ECS also accepts.</summary>
    public static int? ParseUnits(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }
        var v = value.Trim();
        if (int.TryParse(v, System.Globalization.CultureInfo.InvariantCulture, out var n))
        {
            return n;
        }
        var parts = v.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 2 && double.TryParse(parts[0], System.Globalization.CultureInfo.InvariantCulture, out var d))
        {
            return parts[1].ToUpperInvariant() switch
            {
                "VCPU" => (int)(d * 1024),
                "GB" => (int)(d * 1024),
                "MB" or "MIB" => (int)d,
                _ => null,
            };
        }
        return null;
    }
}
