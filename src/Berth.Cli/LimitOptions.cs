using System.CommandLine;
using Berth.Aws.Auth;
using Berth.Aws.Hosting;

namespace Berth.Cli;

/// <summary>The server options that bound what clients may ask of it: connections, slow requests, request rates.</summary>
internal static class LimitOptions
{
    private static readonly Option<int?> MaxConnectionsPerAddress = new("--max-connections-per-address")
    {
        Description = "Open connections one client address may hold on each port; more are closed at once (default 512; env BERTH_MAX_CONNECTIONS_PER_ADDRESS).",
    };

    private static readonly Option<int?> MaxConnections = new("--max-connections")
    {
        Description = "Open connections in all; more are closed at once (default 10000; keep it under the process's open-file limit, ulimit -n; env BERTH_MAX_CONNECTIONS).",
    };

    private static readonly Option<double?> RequestHeadersTimeout = new("--request-headers-timeout")
    {
        Description = "Seconds a client has to send a request's headers before the connection is closed (default 10; env BERTH_REQUEST_HEADERS_TIMEOUT).",
    };

    private static readonly Option<string?> RateLimits = new("--rate-limits")
    {
        Description = "A JSON file of per-credential token buckets by action (README: 'Rate limits'); over the rate an API call gets ThrottlingException. Off by default (env BERTH_RATE_LIMITS).",
    };

    public static Option[] All => [MaxConnectionsPerAddress, MaxConnections, RequestHeadersTimeout, RateLimits];

    /// <summary>The limits the options (or their environment variables) ask for, or an error naming the option at fault.</summary>
    public static (ServerLimits Limits, RateLimitPolicy? Rates, string? Error) Read(ParseResult p)
    {
        var defaults = new ServerLimits();
        var perAddress = p.GetValue(MaxConnectionsPerAddress) ?? EnvInt("BERTH_MAX_CONNECTIONS_PER_ADDRESS") ?? defaults.MaxConnectionsPerAddress;
        var total = p.GetValue(MaxConnections) ?? EnvInt("BERTH_MAX_CONNECTIONS") ?? defaults.MaxConnections;
        var headers = p.GetValue(RequestHeadersTimeout)
            ?? (double.TryParse(Environment.GetEnvironmentVariable("BERTH_REQUEST_HEADERS_TIMEOUT"), System.Globalization.CultureInfo.InvariantCulture, out var h) ? h : defaults.RequestHeadersTimeout.TotalSeconds);
        if (perAddress < 1 || total < 1)
        {
            return (defaults, null, "--max-connections-per-address and --max-connections take a number >= 1.");
        }
        if (!(headers > 0) || headers > 3600)
        {
            return (defaults, null, $"--request-headers-timeout takes a number of seconds between 0 and 3600, not {headers}.");
        }
        var limits = defaults with { MaxConnectionsPerAddress = perAddress, MaxConnections = total, RequestHeadersTimeout = TimeSpan.FromSeconds(headers) };
        var file = p.GetValue(RateLimits);
        if (string.IsNullOrEmpty(file))
        {
            file = Environment.GetEnvironmentVariable("BERTH_RATE_LIMITS");
        }
        if (string.IsNullOrEmpty(file))
        {
            return (limits, null, null);
        }
        try
        {
            return (limits, RateLimitPolicy.Load(file), null);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            return (limits, null, $"--rate-limits: {e.Message}");
        }
    }

    private static int? EnvInt(string name) => int.TryParse(Environment.GetEnvironmentVariable(name), out var v) ? v : null;
}
