using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Registry;

/// <summary>
/// A <c>berth server</c> of the test's own, a client for its <c>/v2/</c>, and the local images the test
/// makes (removed afterwards): what the docker-driven registry tests share.
/// </summary>
public abstract class RegistryServerTest(params string[] serverArgs) : IAsyncLifetime
{
    protected BerthServer Server { get; private set; } = null!;
    protected RegistryClient RegistryApi { get; private set; } = null!;
    protected LocalImages Images { get; private set; } = null!;

    /// <summary>Checks for the client tools the test drives, before the server starts: the docker engine unless overridden.</summary>
    protected virtual Task RequireToolsAsync() => DockerCli.RequireAsync();

    public virtual async ValueTask InitializeAsync()
    {
        await RequireToolsAsync();
        Server = await BerthServer.StartAsync("server", serverArgs);
        RegistryApi = new RegistryClient(Server);
        Images = new LocalImages(Server.RunId);
    }

    public virtual async ValueTask DisposeAsync()
    {
        if (Images is not null)
        {
            await Images.DisposeAsync();
        }
        RegistryApi?.Dispose();
        if (Server is not null)
        {
            await Server.DisposeAsync();
        }
        GC.SuppressFinalize(this);
    }
}
