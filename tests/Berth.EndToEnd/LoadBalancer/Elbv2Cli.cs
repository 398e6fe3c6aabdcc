using System.Net;
using System.Text.Json.Nodes;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.LoadBalancer;

/// <summary>The <c>aws elbv2</c> steps the load balancer tests repeat, and curl against the listeners.</summary>
public sealed class Elbv2Cli(AwsCli aws)
{
    public AwsCli Aws { get; } = aws;

    public Task<JsonNode> RunAsync(params string[] args) => Aws.RunAsync(["elbv2", .. args]);

    public async Task<string> TextAsync(string query, params string[] args)
        => (await Aws.RunAsync(["elbv2", .. args, "--query", query]))!.GetValue<string>();

    public async Task<(string Arn, string Dns)> CreateLoadBalancerAsync(string name)
    {
        var lb = (await RunAsync("create-load-balancer", "--name", name, "--subnets", "subnet-0a1b2c3d", "subnet-1a2b3c4d"))["LoadBalancers"]![0]!;
        await RunAsync("wait", "load-balancer-available", "--load-balancer-arns", lb["LoadBalancerArn"]!.GetValue<string>());
        return (lb["LoadBalancerArn"]!.GetValue<string>(), lb["DNSName"]!.GetValue<string>());
    }

    /// <summary>An ip target group with quick health checks (every 5 s, 2 to change state).</summary>
    public Task<string> CreateTargetGroupAsync(string name, params string[] extra)
        => TextAsync("TargetGroups[0].TargetGroupArn", ["create-target-group", "--name", name, "--protocol", "HTTP", "--port", "80",
            "--vpc-id", "vpc-0a1b2c3d", "--target-type", "ip", "--health-check-path", "/health", "--health-check-interval-seconds", "5",
            "--health-check-timeout-seconds", "2", "--healthy-threshold-count", "2", "--unhealthy-threshold-count", "2", .. extra]);

    public Task RegisterAsync(string tg, params TestBackend[] backends)
        => RunAsync(["register-targets", "--target-group-arn", tg, "--targets", .. backends.Select(b => $"Id=127.0.0.1,Port={b.Port}")]);

    public Task<string> CreateListenerAsync(string lb, int port, string defaultActions)
        => TextAsync("Listeners[0].ListenerArn", "create-listener", "--load-balancer-arn", lb, "--protocol", "HTTP", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--default-actions", defaultActions);

    public Task SetAttributeAsync(string tg, string key, string value)
        => RunAsync("modify-target-group-attributes", "--target-group-arn", tg, "--attributes", $"Key={key},Value={value}");

    public async Task<string[]> HealthStatesAsync(string tg)
        => (await RunAsync("describe-target-health", "--target-group-arn", tg))["TargetHealthDescriptions"]!.AsArray()
            .Select(d => d!["TargetHealth"]!["State"]!.GetValue<string>()).ToArray();

    /// <summary>Polls DescribeTargetHealth until every target is in <paramref name="state"/>.</summary>
    public Task WaitForStateAsync(string tg, string state, TimeSpan timeout)
        => Wait.ForAsync(async () => (await HealthStatesAsync(tg)) is { Length: > 0 } s && s.All(x => x == state) ? "ok" : null, timeout, $"targets of {tg} to be {state}");

    /// <summary>curl: (HTTP status, body) of one request; extra arguments go before the URL.</summary>
    public static async Task<(int Status, string Body)> CurlAsync(string url, params string[] extra)
    {
        var r = await Processes.RunAsync("curl", ["-s", "-m", "30", "-w", "\n%{http_code}", .. extra, url], timeout: TimeSpan.FromSeconds(40));
        var nl = r.Stdout.LastIndexOf('\n');
        return (int.Parse(r.Stdout[(nl + 1)..], System.Globalization.CultureInfo.InvariantCulture), r.Stdout[..nl]);
    }

    public static async Task WaitForPortAsync(int port, bool open, TimeSpan timeout)
        => await Wait.ForAsync(async () =>
        {
            try
            {
                using var c = new System.Net.Sockets.TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, port);
                return open ? "open" : null;
            }
            catch (System.Net.Sockets.SocketException)
            {
                return open ? null : "closed";
            }
        }, timeout, $"port {port} to be {(open ? "open" : "closed")}");
}
