using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Berth.Core.Agent;
using Grpc.Core;
using Grpc.Net.Client;

namespace Berth.Agent;

/// <summary>
/// The agent's side of the TLS channel: joining once with a token (verifying the server by the CA fingerprint in it,
/// then sending a CSR for a key that never leaves this host), keeping the client certificate, its key and the CA in
/// DIR/tls (key 0600), and the pinned validation of the server on every connection afterwards.
/// </summary>
public static class AgentTls
{
    public const string DirectoryName = "tls";
    private const string KeyFile = "agent.key";
    private const string CertificateFile = "agent.crt";
    private const string CaFile = "ca.crt";

    /// <summary>True when the agent whose data directory is <paramref name="agentDataDirectory"/> holds its certificate.</summary>
    public static bool HasJoined(string agentDataDirectory)
    {
        var dir = Path.Combine(agentDataDirectory, DirectoryName);
        return File.Exists(Path.Combine(dir, KeyFile)) && File.Exists(Path.Combine(dir, CertificateFile)) && File.Exists(Path.Combine(dir, CaFile));
    }

    /// <summary>The client certificate (with key) and the CA it trusts, from DIR/tls; null before the agent joined.</summary>
    internal static AgentCredentials? Load(string agentDataDirectory)
    {
        if (!HasJoined(agentDataDirectory))
        {
            return null;
        }
        var dir = Path.Combine(agentDataDirectory, DirectoryName);
        var client = X509Certificate2.CreateFromPemFile(Path.Combine(dir, CertificateFile), Path.Combine(dir, KeyFile));
        var ca = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(dir, CaFile)); // PEM, certificate only
        return new AgentCredentials(client, ca);
    }

    /// <summary>
    /// Joins through the agent endpoint <paramref name="endpoint"/> (https): verifies the server by the token's CA
    /// fingerprint, sends the token's secret with a CSR for a new P-256 key, checks the certificate it gets back and
    /// stores it. Throws <see cref="AgentTlsException"/> when the server is not trusted or refuses; other exceptions
    /// (the server not reachable yet) are worth retrying.
    /// </summary>
    internal static async Task<AgentCredentials> JoinAsync(Uri endpoint, string agentDataDirectory, string agentId, JoinToken token, CancellationToken ct)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var csr = new CertificateRequest($"CN={agentId}", key, HashAlgorithmName.SHA256).CreateSigningRequest();
        // The CA first, over a connection not verified yet: it is taken only if it hashes to the token's fingerprint,
        // and from then on the server must prove it holds a certificate that CA issued before the secret is sent.
        byte[] caDer;
        using (var probe = GrpcChannel.ForAddress(endpoint, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = (_, _, _, _) => true } },
            DisposeHttpClient = true,
        }))
        {
            try
            {
                caDer = (await new AgentGateway.AgentGatewayClient(probe).CaCertificateAsync(new CaCertificateRequest(), deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: ct)
                    .ConfigureAwait(false)).Certificate.ToByteArray();
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.FailedPrecondition or StatusCode.Unimplemented)
            {
                throw new AgentTlsException($"the server refused to let this agent join: {e.Status.Detail}");
            }
        }
        using var pinnedCa = X509CertificateLoader.LoadCertificate(caDer);
        if (JoinToken.Fingerprint(pinnedCa) != token.CaFingerprint)
        {
            throw new AgentTlsException($"the server at {endpoint} is not trusted: its CA (sha256:{JoinToken.Fingerprint(pinnedCa)[..16]}...) is not the one whose fingerprint the join token holds ({token.CaFingerprint[..16]}...): the token is for another server, or something sits between this agent and the server");
        }
        var pin = new PinnedServer(token.CaFingerprint, pinnedCa);
        JoinResponse answer;
        using (var channel = GrpcChannel.ForAddress(endpoint, new GrpcChannelOptions { HttpHandler = Handler(pin, null), DisposeHttpClient = true }))
        {
            try
            {
                answer = await new AgentGateway.AgentGatewayClient(channel).JoinAsync(new JoinRequest
                {
                    JoinSecret = token.Secret,
                    AgentId = agentId,
                    CertificateRequest = Google.Protobuf.ByteString.CopyFrom(csr),
                }, deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: ct).ConfigureAwait(false);
            }
            catch (RpcException) when (pin.Failure is { } why)
            {
                throw new AgentTlsException($"the server at {endpoint} is not trusted: {why}");
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.PermissionDenied or StatusCode.FailedPrecondition or StatusCode.InvalidArgument or StatusCode.Unimplemented)
            {
                throw new AgentTlsException($"the server refused to let this agent join: {e.Status.Detail}");
            }
        }
        using var ca = X509CertificateLoader.LoadCertificate(answer.CaCertificate.Span);
        if (JoinToken.Fingerprint(ca) != token.CaFingerprint)
        {
            throw new AgentTlsException("the server answered with a CA other than the one the join token names");
        }
        using var issued = X509CertificateLoader.LoadCertificate(answer.Certificate.Span);
        if (issued.GetNameInfo(X509NameType.SimpleName, false) != agentId || issued.GetECDsaPublicKey() is not { } pub
            || !pub.ExportSubjectPublicKeyInfo().AsSpan().SequenceEqual(key.ExportSubjectPublicKeyInfo()))
        {
            throw new AgentTlsException("the certificate the server issued is not for this agent's key and id");
        }
        var dir = Path.Combine(agentDataDirectory, DirectoryName);
        Directory.CreateDirectory(dir);
        Write(Path.Combine(dir, KeyFile), key.ExportPkcs8PrivateKeyPem(), secret: true);
        Write(Path.Combine(dir, CaFile), ca.ExportCertificatePem(), secret: false);
        Write(Path.Combine(dir, CertificateFile), issued.ExportCertificatePem(), secret: false); // last: its presence means "joined"
        return Load(agentDataDirectory) ?? throw new AgentTlsException($"the certificate written to {dir} could not be read back");
    }

    /// <summary>An HTTP/2 handler that presents <paramref name="client"/> (when given) and trusts only <paramref name="pin"/>'s CA.</summary>
    internal static SocketsHttpHandler Handler(PinnedServer pin, X509Certificate2? client, Action<SocketsHttpHandler>? configure = null)
    {
        var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = pin.Validate,
                // Always this certificate, whatever CA names the server lists as acceptable (the default selection
                // would drop it if the list left this private CA out).
                LocalCertificateSelectionCallback = client is null ? null : (_, _, _, _, _) => client,
                EnabledSslProtocols = System.Security.Authentication.SslProtocols.Tls12 | System.Security.Authentication.SslProtocols.Tls13,
            },
        };
        configure?.Invoke(handler);
        return handler;
    }

    /// <summary>
    /// Why the server's certificate is not acceptable, or null when it is: its names must include the host dialled,
    /// and it must chain to <paramref name="knownCa"/>, whose SHA-256 must be <paramref name="fingerprint"/>. The
    /// system trust store plays no part.
    /// </summary>
    public static string? VerifyServer(X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors, string fingerprint, X509Certificate2? knownCa)
    {
        if (certificate is null || errors.HasFlag(SslPolicyErrors.RemoteCertificateNotAvailable))
        {
            return "the server presented no certificate";
        }
        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            return "the server's certificate does not carry the host name or address this agent dialled (start the server with --tls-san NAME for each name agents use)";
        }
        _ = chain; // built against the system store: not what decides here
        var ca = knownCa;
        if (ca is null || JoinToken.Fingerprint(ca) != fingerprint)
        {
            return $"no CA with the pinned fingerprint ({fingerprint[..Math.Min(16, fingerprint.Length)]}...) to verify the server with";
        }
        using var verify = new X509Chain();
        verify.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        verify.ChainPolicy.CustomTrustStore.Add(ca);
        verify.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (!verify.Build(leaf) || !verify.ChainElements[^1].Certificate.RawData.AsSpan().SequenceEqual(ca.RawData))
        {
            var status = string.Join(", ", verify.ChainStatus.Select(s => s.StatusInformation.Trim()));
            return $"its certificate does not chain to the CA whose fingerprint the join token holds ({fingerprint[..16]}...): {status}";
        }
        return null;
    }

    private static void Write(string path, string text, bool secret)
    {
        var tmp = path + ".tmp";
        using (var f = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            if (secret && !OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(f.SafeFileHandle, UnixFileMode.UserRead | UnixFileMode.UserWrite); // before it holds anything
            }
            f.Write(System.Text.Encoding.UTF8.GetBytes(text));
            f.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }
}

/// <summary>The agent's certificate (with its key) and the server CA it trusts.</summary>
internal sealed record AgentCredentials(X509Certificate2 Client, X509Certificate2 Ca)
{
    public PinnedServer Pin => new(JoinToken.Fingerprint(Ca), Ca);
}

/// <summary>Validation of the server against one CA; remembers why it last refused, for a clear log line.</summary>
internal sealed class PinnedServer(string fingerprint, X509Certificate2? knownCa)
{
    public string? Failure { get; private set; }

    public bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        Failure = AgentTls.VerifyServer(certificate, chain, errors, fingerprint, knownCa);
        return Failure is null;
    }
}

/// <summary>The agent cannot secure its channel (server not trusted, join refused): retrying does not help.</summary>
public sealed class AgentTlsException(string message) : Exception(message);
