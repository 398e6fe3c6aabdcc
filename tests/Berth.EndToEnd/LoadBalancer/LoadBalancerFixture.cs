using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.LoadBalancer;

/// <summary>One <c>berth server</c> shared by a test class; each test makes its own load balancer, groups and ports.</summary>
public sealed class LoadBalancerFixture : IAsyncLifetime
{
    public BerthServer Server { get; private set; } = null!;
    public Elbv2Cli Elb { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        Server = await BerthServer.StartAsync("server");
        Elb = new Elbv2Cli(new AwsCli(Server.Endpoint));
    }

    public async ValueTask DisposeAsync() => await Server.DisposeAsync();

    public static string Unique(string prefix) => prefix + "-" + Guid.NewGuid().ToString("N")[..8];
}
