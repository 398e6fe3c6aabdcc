using Berth.Agent;
using Berth.Core;
using Berth.Core.Agent;

namespace Berth.UnitTests.Agents;

public sealed class RegistryRoutingTests
{
    [Theory]
    [InlineData("busybox", null)]
    [InlineData("library/busybox:1.36", null)]
    [InlineData("berth-test/busybox:latest", null)]
    [InlineData("localhost/app:1", "localhost")]
    [InlineData("localhost:4566/app:1", "localhost:4566")]
    [InlineData("127.0.0.1:4566/team/app@sha256:abc", "127.0.0.1:4566")]
    [InlineData("registry.example.com/app", "registry.example.com")]
    [InlineData("[::1]:5000/app", "[::1]:5000")]
    [InlineData("Upper/app", "Upper")]
    public void RegistryHost_ReadsTheRegistryAsDockerDoes(string image, string? expected)
        => Assert.Equal(expected, ImageReference.RegistryHost(image));

    [Theory]
    [InlineData("localhost:4566/app:1", "http://10.0.0.5:4566", "10.0.0.5:4566/app:1")]
    [InlineData("127.0.0.1:4566/team/app:1", "http://10.0.0.5:4566/", "10.0.0.5:4566/team/app:1")]
    [InlineData("LOCALHOST:4566/app", "http://berth-server:4566", "berth-server:4566/app")]
    [InlineData("localhost:4566/app@sha256:0123", "http://berth.internal:4566", "berth.internal:4566/app@sha256:0123")]
    [InlineData("localhost:4566/app:1", "http://[fd00::5]:4566", "[fd00::5]:4566/app:1")]
    public void PullReference_LoopbackRegistryOnServersPort_RemoteServer_PullsFromTheServer(string image, string server, string expected)
        => Assert.Equal(expected, RegistryRouting.PullReference(image, new Uri(server)));

    [Theory]
    [InlineData("localhost:4566/app:1", "http://127.0.0.1:4566")]     // the agent runs next to the server
    [InlineData("localhost:4566/app:1", "http://localhost:4566")]
    [InlineData("127.0.0.1:4566/app:1", "http://[::1]:4566")]
    [InlineData("localhost:5000/app:1", "http://10.0.0.5:4566")]     // another port: a registry of the agent's own host
    [InlineData("localhost/app:1", "http://10.0.0.5:4566")]          // no port
    [InlineData("10.0.0.9:4566/app:1", "http://10.0.0.5:4566")]      // not a loopback name
    [InlineData("busybox", "http://10.0.0.5:4566")]
    [InlineData("berth-test/busybox:latest", "http://10.0.0.5:4566")]
    [InlineData("localhost:4566", "http://10.0.0.5:4566")]           // a Docker Hub image named like a host
    public void PullReference_OtherImagesOrLoopbackServer_Unchanged(string image, string server)
        => Assert.Equal(image, RegistryRouting.PullReference(image, new Uri(server)));

    [Fact]
    public void PullReference_ServerWithoutPort_UsesTheSchemesDefault()
        => Assert.Equal("berth:443/app:1", RegistryRouting.PullReference("localhost:443/app:1", new Uri("https://berth")));

    private static RegistryAuth Auth(string server, string image = "", string password = "token")
        => new() { ServerAddress = server, Username = "AWS", Password = password, Image = image };

    [Fact]
    public void FindAuth_EntryForExactlyTheImage_WinsOverTheRegistry()
    {
        var auths = new[] { Auth("localhost:4566", "localhost:4566/other:1", "a"), Auth("localhost:4566", "localhost:4566/app:1", "b") };
        Assert.Equal("b", RegistryRouting.FindAuth(auths, "localhost:4566/app:1")!.Password);
    }

    [Fact]
    public void FindAuth_NoEntryForTheImage_UsesOneForItsRegistry()
        => Assert.Equal("a", RegistryRouting.FindAuth([Auth("localhost:4566", "localhost:4566/other:1", "a")], "localhost:4566/app:2")!.Password);

    [Theory]
    [InlineData("127.0.0.1:4566")]
    [InlineData("http://localhost:4566")]
    [InlineData("https://LOCALHOST:4566/")]
    [InlineData("[::1]:4566")]
    public void FindAuth_LoopbackNamesOfTheSamePort_AreOneRegistry(string server)
        => Assert.NotNull(RegistryRouting.FindAuth([Auth(server)], "localhost:4566/app:1"));

    [Theory]
    [InlineData("localhost:4567", "localhost:4566/app:1")]   // another port
    [InlineData("localhost", "localhost:4566/app:1")]        // no port on one side
    [InlineData("10.0.0.5:4566", "localhost:4566/app:1")]    // not loopback
    [InlineData("localhost:4566", "busybox")]                // Docker Hub image
    [InlineData("localhost:4566", "berth-test/busybox:latest")]
    [InlineData("", "localhost:4566/app:1")]
    public void FindAuth_OtherRegistry_None(string server, string image)
        => Assert.Null(RegistryRouting.FindAuth([Auth(server)], image));

    [Fact]
    public void FindAuth_NoEntries_None() => Assert.Null(RegistryRouting.FindAuth([], "localhost:4566/app:1"));

    [Fact]
    public void RegistryCredential_ToString_LeavesThePasswordOut()
        => Assert.DoesNotContain("s3cret", new RegistryCredential("localhost:4566", "AWS", "s3cret").ToString(), StringComparison.Ordinal);
}
