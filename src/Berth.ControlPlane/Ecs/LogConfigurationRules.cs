using Berth.Aws.Ecs;
using Berth.Aws.Protocol;

namespace Berth.ControlPlane.Ecs;

/// <summary>
/// What RegisterTaskDefinition accepts in a container's logConfiguration. awslogs is shipped by the agent (its
/// options checked here as Docker's awslogs driver checks them when a container is created on ECS); the drivers
/// Docker has itself are passed to it; anything else is refused, never swapped for another driver.
/// </summary>
internal static class LogConfigurationRules
{
    /// <summary>Drivers Docker runs itself; the agent hands them to Docker with their options.</summary>
    private static readonly HashSet<string> DockerNative = new(StringComparer.Ordinal) { "json-file", "syslog", "journald", "gelf", "fluentd", "splunk" };

    /// <summary>awslogs options Berth honours (awslogs-region selects the region's log groups on this Berth).</summary>
    private static readonly HashSet<string> AwsLogsOptions = new(StringComparer.Ordinal)
    {
        "awslogs-group", "awslogs-region", "awslogs-stream-prefix", "awslogs-create-group", "mode", "max-buffer-size",
    };

    public static void Validate(List<ContainerDefinition> containers)
    {
        for (var i = 0; i < containers.Count; i++)
        {
            if (containers[i].LogConfiguration is not { } lc)
            {
                continue;
            }
            var at = $"containerDefinitions[{i}].logConfiguration";
            if (lc.SecretOptions is { Count: > 0 })
            {
                throw AwsException.Client($"{at}.secretOptions: secrets are not supported by Berth yet (there is no secrets store); put the value in options or remove it.");
            }
            var driver = lc.LogDriver ?? "";
            if (driver == "awslogs")
            {
                ValidateAwsLogs(lc.Options ?? [], at);
            }
            else if (!DockerNative.Contains(driver))
            {
                throw AwsException.Client($"{at}.logDriver: '{driver}' is not supported by Berth; use awslogs (shipped to Berth's CloudWatch Logs API) or one of Docker's own drivers: {string.Join(", ", DockerNative)}.");
            }
        }
    }

    private static void ValidateAwsLogs(Dictionary<string, string> options, string at)
    {
        foreach (var key in options.Keys)
        {
            if (!AwsLogsOptions.Contains(key))
            {
                throw AwsException.Client($"{at}.options: unknown log opt '{key}' for the awslogs log driver (Berth supports {string.Join(", ", AwsLogsOptions)}).");
            }
        }
        if (!options.TryGetValue("awslogs-group", out var group) || string.IsNullOrWhiteSpace(group))
        {
            throw AwsException.Client($"{at}.options: awslogs-group is required for the awslogs log driver.");
        }
        if (group.Length > 512 || group.Any(ch => !(char.IsAsciiLetterOrDigit(ch) || ch is '_' or '-' or '/' or '.' or '#')))
        {
            throw AwsException.Client($"{at}.options: awslogs-group '{group}' is not a valid log group name (up to 512 characters: letters, digits, '_', '-', '/', '.', '#').");
        }
        if (options.TryGetValue("awslogs-region", out var region) && !Aws.Auth.CredentialScope.IsValidRegion(region))
        {
            throw AwsException.Client($"{at}.options: awslogs-region '{region}' is not a region name (e.g. us-west-2).");
        }
        if (options.TryGetValue("awslogs-stream-prefix", out var prefix) && (prefix.Contains(':', StringComparison.Ordinal) || prefix.Contains('*', StringComparison.Ordinal)))
        {
            throw AwsException.Client($"{at}.options: awslogs-stream-prefix '{prefix}' must not contain ':' or '*'.");
        }
        if (options.TryGetValue("awslogs-create-group", out var create) && !bool.TryParse(create, out _))
        {
            throw AwsException.Client($"{at}.options: awslogs-create-group must be true or false, not '{create}'.");
        }
        var mode = options.GetValueOrDefault("mode", "blocking");
        if (mode is not ("blocking" or "non-blocking"))
        {
            throw AwsException.Client($"{at}.options: mode must be blocking or non-blocking, not '{mode}'.");
        }
        if (options.TryGetValue("max-buffer-size", out var size))
        {
            if (mode != "non-blocking")
            {
                throw AwsException.Client($"{at}.options: max-buffer-size applies only with mode non-blocking.");
            }
            if (ParseSize(size) is null)
            {
                throw AwsException.Client($"{at}.options: max-buffer-size '{size}' is not a size (e.g. 1m, 512k, 4194304).");
            }
        }
    }

    /// <summary>Docker's size syntax, as the agent reads it (Berth.Agent.Logs.AwsLogsTarget.ParseSize).</summary>
    private static long? ParseSize(string text)
    {
        var s = text.Trim().ToLowerInvariant();
        var end = 0;
        while (end < s.Length && (char.IsAsciiDigit(s[end]) || s[end] == '.'))
        {
            end++;
        }
        if (end == 0 || !double.TryParse(s.AsSpan(0, end), System.Globalization.NumberStyles.AllowDecimalPoint, System.Globalization.CultureInfo.InvariantCulture, out var n) || n <= 0)
        {
            return null;
        }
        return s[end..].Trim() switch
        {
            "" or "b" => (long)n,
            "k" or "kb" or "kib" => (long)(n * 1024),
            "m" or "mb" or "mib" => (long)(n * 1024 * 1024),
            "g" or "gb" or "gib" => (long)(n * 1024 * 1024 * 1024),
            _ => null,
        };
    }
}
