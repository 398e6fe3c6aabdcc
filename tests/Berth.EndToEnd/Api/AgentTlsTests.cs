using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Berth.Core.Agent;
using Berth.EndToEnd.Harness;
using Grpc.Core;
using Grpc.Net.Client;

namespace Berth.EndToEnd.Api;

/// <summary>
/// Issue 12, agents join with a token over TLS: a real `berth server --agent-tls` on loopback (the TLS path a
/// non-loopback server always takes), real `berth agent` processes, real Docker, the aws CLI; the handshake itself
/// is checked with a raw SslStream.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class AgentTlsTests
{
    private const string Def = """[{"name":"main","image":"berth-test/busybox:latest","memory":16,"command":["sleep","600"],"stopTimeout":1}]""";
    private static readonly TimeSpan AgentWait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task TlsAgent_JoinsWithToken_RunsTask_ReconnectsWithoutToken_RotationKeepsIt()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("server", "--agent-tls");
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster", "--cluster-name", "tls");

        // The agent port speaks TLS with a certificate issued by the CA in DATA/pki, and nothing else.
        using var ca = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(server.DataDirectory, "pki", "ca.crt"));
        var serving = await HandshakeAsync(server.AgentPort);
        Assert.True(ChainsTo(serving, ca), "the agent port's certificate does not chain to DATA/pki/ca.crt");
        Assert.Contains("127.0.0.1", serving.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateIPAddresses().Select(a => a.ToString()));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(server.DataDirectory, "pki", "ca.key")));
        await AssertPlaintextRefusedAsync(server.AgentPort);

        // The token printed at start is the one `berth join-token` prints, and names this CA.
        var token = await server.JoinTokenAsync();
        Assert.Contains(token, server.Log, StringComparison.Ordinal);
        Assert.True(JoinToken.TryParse(token, out var parsed, out _));
        Assert.Equal(JoinToken.Fingerprint(ca), parsed.CaFingerprint);

        // Without the token an agent cannot even start to register.
        server.StartTlsAgent("tls", "no-token", joinToken: null);
        Assert.Equal(2, await server.WaitForAgentExitAsync("no-token", AgentWait));
        Assert.Contains("this agent has not joined", server.Log, StringComparison.Ordinal);

        // With it, it joins once, registers, and runs a task.
        server.StartTlsAgent("tls", "agent-a", token);
        var arn = await aws.WaitForContainerInstanceAsync("tls", AgentWait);
        Assert.Contains("[agent-a]", server.Log, StringComparison.Ordinal);
        Assert.Contains("Joined the server at https://127.0.0.1:" + server.AgentPort, server.Log, StringComparison.Ordinal);
        var tlsDir = Path.Combine(server.AgentDataDirectory("agent-a"), "tls");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(tlsDir, "agent.key")));
        using (var client = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(tlsDir, "agent.crt")))
        {
            Assert.True(ChainsTo(client, ca));
            Assert.Equal(server.AgentIdentity("agent-a").AgentId, client.GetNameInfo(X509NameType.SimpleName, false));
            Assert.InRange((client.NotAfter - client.NotBefore).TotalDays, 364, 366);
        }
        await EcsScenario.RegisterAsync(aws, "tls", Def);
        var task = (await EcsScenario.RunOneAsync(aws, "tls", "tls"))["taskArn"]!.GetValue<string>();
        await EcsScenario.WaitForStatusAsync(aws, "tls", task, "RUNNING");

        // Restarted without the token, it reconnects as the same instance with its certificate.
        await server.KillAgentAsync("agent-a");
        await Wait.ForAsync(async () => (await InstanceAsync(aws, "tls", arn))["agentConnected"]!.GetValue<bool>() ? null : "", AgentWait, "agent A to show disconnected");
        server.StartTlsAgent("tls", "agent-a", joinToken: null);
        await Wait.ForAsync(async () => (await InstanceAsync(aws, "tls", arn))["agentConnected"]!.GetValue<bool>() ? "" : null, AgentWait, "agent A to reconnect without the token");
        Assert.Equal("RUNNING", (await EcsScenario.DescribeAsync(aws, "tls", task))["lastStatus"]!.GetValue<string>());

        // Rotation: the old token admits nobody new, the new one does, and the joined agent is unaffected.
        var rotated = await server.JoinTokenAsync(rotate: true);
        Assert.NotEqual(token, rotated);
        Assert.Equal(rotated, await server.JoinTokenAsync());
        server.StartTlsAgent("tls", "old-token", token);
        Assert.Equal(4, await server.WaitForAgentExitAsync("old-token", AgentWait));
        Assert.Contains("secret is not this server's current one", server.Log, StringComparison.Ordinal);
        server.StartTlsAgent("tls", "new-token", rotated);
        await Wait.ForAsync(async () => (await aws.RunAsync("ecs", "list-container-instances", "--cluster", "tls"))["containerInstanceArns"]!.AsArray().Count == 2 ? "" : null,
            AgentWait, "the agent with the rotated token to register");
        Assert.True((await InstanceAsync(aws, "tls", arn))["agentConnected"]!.GetValue<bool>());
    }

    [Fact]
    public async Task WrongFingerprint_AgentDoesNotTrustTheServer_AndSendsNoSecret()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("server", "--agent-tls");
        var token = await server.JoinTokenAsync();
        Assert.True(JoinToken.TryParse(token, out var real, out _));
        var forged = new JoinToken(new string('a', 64), real.Secret).ToString();

        server.StartTlsAgent("default", "mitm", forged);
        Assert.Equal(4, await server.WaitForAgentExitAsync("mitm", AgentWait));
        Assert.Contains("is not trusted", server.Log, StringComparison.Ordinal);
        Assert.Contains("is not the one whose fingerprint the join token holds", server.Log, StringComparison.Ordinal);
        // It stopped before Join: the server issued nothing and no instance exists.
        Assert.False(File.Exists(Path.Combine(server.DataDirectory, "pki", "agents.json")));
        Assert.False(Directory.Exists(Path.Combine(server.AgentDataDirectory("mitm"), "tls")));
        var aws = new AwsCli(server.Endpoint);
        var clusters = await aws.RunAsync("ecs", "list-clusters");
        Assert.Empty(clusters["clusterArns"]!.AsArray()); // not even the default cluster was created by a registration
    }

    [Fact]
    public async Task ReplayedIdentity_WithAnotherCertificateOrNone_IsRefused()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("server", "--agent-tls");
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster", "--cluster-name", "replay");
        var token = await server.JoinTokenAsync();
        server.StartTlsAgent("replay", "agent-a", token);
        var arnA = await aws.WaitForContainerInstanceAsync("replay", AgentWait);
        var identityA = await File.ReadAllTextAsync(Path.Combine(server.AgentDataDirectory("agent-a"), "agent.json"));
        var (agentIdA, _) = server.AgentIdentity("agent-a");

        // 1. A copy of A's identity file cannot join as A: an agent id joins once.
        Directory.CreateDirectory(server.AgentDataDirectory("copy"));
        await File.WriteAllTextAsync(Path.Combine(server.AgentDataDirectory("copy"), "agent.json"), identityA);
        server.StartTlsAgent("replay", "copy", token);
        Assert.Equal(4, await server.WaitForAgentExitAsync("copy", AgentWait));
        Assert.Contains($"agent {agentIdA} has already joined", server.Log, StringComparison.Ordinal);

        // 2. An agent that joined as itself and then claims A's id, ARN and secret is refused by its certificate.
        server.StartTlsAgent("replay", "mallory", token);
        await Wait.ForAsync(async () => (await aws.RunAsync("ecs", "list-container-instances", "--cluster", "replay"))["containerInstanceArns"]!.AsArray().Count == 2 ? "" : null,
            AgentWait, "mallory to register as itself");
        await server.KillAgentAsync("mallory");
        await File.WriteAllTextAsync(Path.Combine(server.AgentDataDirectory("mallory"), "agent.json"), identityA);
        server.StartTlsAgent("replay", "mallory", joinToken: null);
        await Wait.ForAsync(() => Task.FromResult(server.Log.Contains($"belongs to agent {AgentIdOfMallory(server)}, not to agent {agentIdA}", StringComparison.Ordinal) ? "" : null),
            AgentWait, "mallory's claim of A's identity to be refused");

        // 3. A raw client with A's identity and no certificate gets past TLS (Join needs that) but not into Connect.
        var secretA = JsonNode.Parse(identityA)!["agentSecret"]!.GetValue<string>();
        using (var channel = GrpcChannel.ForAddress($"https://127.0.0.1:{server.AgentPort}", new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = (_, _, _, _) => true } },
        }))
        {
            using var call = new AgentGateway.AgentGatewayClient(channel).Connect();
            await call.RequestStream.WriteAsync(new AgentMessage
            {
                Register = new Register { Cluster = "replay", AgentId = agentIdA, ContainerInstanceArn = arnA, AgentSecret = secretA, CpuUnits = 1024, MemoryMib = 1024 },
            });
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            Assert.Equal(ServerMessage.BodyOneofCase.Rejected, call.ResponseStream.Current.BodyCase);
            Assert.Contains("requires a client certificate", call.ResponseStream.Current.Rejected.Reason, StringComparison.Ordinal);
        }

        // A still holds its instance.
        var a = await InstanceAsync(aws, "replay", arnA);
        Assert.True(a["agentConnected"]!.GetValue<bool>());
        Assert.Equal("ACTIVE", a["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task DeregisteredWithForce_AgentIsRevoked_AndCannotReconnect()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("server", "--agent-tls");
        var aws = new AwsCli(server.Endpoint);
        await aws.RunAsync("ecs", "create-cluster", "--cluster-name", "revoke");
        server.StartTlsAgent("revoke", "agent-a", await server.JoinTokenAsync());
        var arn = await aws.WaitForContainerInstanceAsync("revoke", AgentWait);
        var (agentId, _) = server.AgentIdentity("agent-a");

        await aws.RunAsync("ecs", "deregister-container-instance", "--cluster", "revoke", "--container-instance", arn, "--force");

        // Its live stream is closed and every reconnect is refused, naming the revocation.
        await Wait.ForAsync(() => Task.FromResult(server.Log.Contains($"agent {agentId} was revoked", StringComparison.Ordinal) ? "" : null), AgentWait, "the agent's reconnect to be refused as revoked");
        var book = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(server.DataDirectory, "pki", "agents.json")))!;
        Assert.NotNull(book["agents"]![agentId]!["revokedAt"]);
        // A restart does not help, and the cluster has no live instance.
        await server.KillAgentAsync("agent-a");
        var before = server.Log.Split('\n').Count(l => l.Contains($"agent {agentId} was revoked", StringComparison.Ordinal));
        server.StartTlsAgent("revoke", "agent-a", joinToken: null);
        await Wait.ForAsync(() => Task.FromResult(server.Log.Split('\n').Count(l => l.Contains($"agent {agentId} was revoked", StringComparison.Ordinal)) > before ? "" : null),
            AgentWait, "the restarted agent to be refused again");
        Assert.Empty((await aws.RunAsync("ecs", "list-container-instances", "--cluster", "revoke"))["containerInstanceArns"]!.AsArray());
        Assert.Equal("INACTIVE", (await InstanceAsync(aws, "revoke", arn))["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task Up_WithAgentTls_LocalAgentJoinsItsOwnServer()
    {
        await DockerCli.RequireAsync();
        await using var server = await BerthServer.StartAsync("up", "--agent-tls");
        var aws = new AwsCli(server.Endpoint);
        var arn = await aws.WaitForContainerInstanceAsync("default", AgentWait);
        Assert.True((await InstanceAsync(aws, "default", arn))["agentConnected"]!.GetValue<bool>());
        Assert.True(File.Exists(Path.Combine(server.DataDirectory, "agent", "tls", "agent.crt")));
        using var ca = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(server.DataDirectory, "pki", "ca.crt"));
        Assert.True(ChainsTo(await HandshakeAsync(server.AgentPort), ca));
    }

    private static string AgentIdOfMallory(BerthServer server)
    {
        // Mallory's own id is the CN of the certificate it joined with (its agent.json now holds A's).
        using var cert = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(server.AgentDataDirectory("mallory"), "tls", "agent.crt"));
        return cert.GetNameInfo(X509NameType.SimpleName, false);
    }

    private static async Task<JsonNode> InstanceAsync(AwsCli aws, string cluster, string arn)
        => (await aws.RunAsync("ecs", "describe-container-instances", "--cluster", cluster, "--container-instances", arn))["containerInstances"]![0]!;

    /// <summary>A TLS handshake (ALPN h2) with the agent port; returns the certificate the server presented.</summary>
    private static async Task<X509Certificate2> HandshakeAsync(int port)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", port);
        await using var tls = new SslStream(tcp.GetStream(), false, (_, _, _, _) => true);
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "127.0.0.1",
            ApplicationProtocols = [SslApplicationProtocol.Http2],
        });
        Assert.Equal(SslApplicationProtocol.Http2, tls.NegotiatedApplicationProtocol);
        Assert.True(tls.SslProtocol is System.Security.Authentication.SslProtocols.Tls12 or System.Security.Authentication.SslProtocols.Tls13);
        return X509CertificateLoader.LoadCertificate(tls.RemoteCertificate!.GetRawCertData());
    }

    /// <summary>HTTP/2 in the clear (as an agent dialling http:// would) gets no gRPC answer from the TLS port.</summary>
    private static async Task AssertPlaintextRefusedAsync(int port)
    {
        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}");
        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await new AgentGateway.AgentGatewayClient(channel).CaCertificateAsync(new CaCertificateRequest(), deadline: DateTime.UtcNow.AddSeconds(10)));
        Assert.NotEqual(StatusCode.OK, e.StatusCode);
    }

    private static bool ChainsTo(X509Certificate2 leaf, X509Certificate2 ca)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(leaf) && chain.ChainElements[^1].Certificate.Thumbprint == ca.Thumbprint;
    }
}
