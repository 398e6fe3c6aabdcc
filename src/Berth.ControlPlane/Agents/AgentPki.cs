using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Serialization;
using Berth.Core.Agent;

namespace Berth.ControlPlane.Agents;

/// <summary>
/// The server's small certificate authority for the agent port, kept in DATA/pki: the CA (ca.crt, ca.key), the agent
/// port's serving certificate (agent-port.crt/.key, re-issued when the names it must carry change or it nears its
/// end), the join secret (join-secret) and the book of agent certificates issued and revoked (agents.json). Private
/// keys and the secret are 0600. Created on first use, reused afterwards.
/// </summary>
/// <remarks>
/// One book per data directory: several server replicas sharing an etcd store would each keep their own (documented
/// in the agent gateway notes). Every member is safe to call from several threads.
/// </remarks>
public sealed class AgentPki
{
    public const string DirectoryName = "pki";
    private static readonly TimeSpan CaLifetime = TimeSpan.FromDays(3650);
    private static readonly TimeSpan ServingLifetime = TimeSpan.FromDays(825);
    /// <summary>How long an agent's client certificate is valid.</summary>
    public static readonly TimeSpan AgentCertificateLifetime = TimeSpan.FromDays(365);
    private static readonly TimeSpan Backdate = TimeSpan.FromMinutes(5); // clocks of agents a little behind still accept

    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly Dictionary<string, AgentCertificateEntry> _agents;

    private AgentPki(string directory, X509Certificate2 ca, TimeProvider time, Dictionary<string, AgentCertificateEntry> agents)
    {
        Directory = directory;
        Ca = ca;
        _time = time;
        _agents = agents;
        CaFingerprint = JoinToken.Fingerprint(ca);
        CaPublic = X509CertificateLoader.LoadCertificate(ca.RawData);
    }

    public string Directory { get; }

    /// <summary>The CA with its private key.</summary>
    public X509Certificate2 Ca { get; }

    /// <summary>The CA without its key (what is sent to agents and added to the TLS chain).</summary>
    public X509Certificate2 CaPublic { get; }

    /// <summary>SHA-256 of the CA's DER, lowercase hex: the fingerprint in every join token.</summary>
    public string CaFingerprint { get; }

    private string SecretPath => Path.Combine(Directory, "join-secret");
    private string BookPath => Path.Combine(Directory, "agents.json");

    /// <summary>Loads DATA/pki, creating the CA (and the join secret) when it is not there yet.</summary>
    public static AgentPki LoadOrCreate(string dataDirectory, TimeProvider? time = null)
    {
        time ??= TimeProvider.System;
        var dir = Path.Combine(dataDirectory, DirectoryName);
        System.IO.Directory.CreateDirectory(dir);
        var crt = Path.Combine(dir, "ca.crt");
        var key = Path.Combine(dir, "ca.key");
        X509Certificate2 ca;
        if (File.Exists(crt) && File.Exists(key))
        {
            ca = X509Certificate2.CreateFromPemFile(crt, key);
        }
        else
        {
            using var k = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var req = new CertificateRequest($"CN=Berth agent CA {Environment.MachineName}, O=Berth", k, HashAlgorithmName.SHA256);
            req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
            req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
            req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(req.PublicKey, false));
            var now = time.GetUtcNow();
            ca = req.CreateSelfSigned(now - Backdate, now + CaLifetime);
            WriteSecretFile(key, k.ExportPkcs8PrivateKeyPem());
            WriteFile(crt, ca.ExportCertificatePem());
        }
        var agents = new Dictionary<string, AgentCertificateEntry>(StringComparer.Ordinal);
        var book = Path.Combine(dir, "agents.json");
        if (File.Exists(book))
        {
            var loaded = JsonSerializer.Deserialize(File.ReadAllBytes(book), PkiJsonContext.Default.AgentCertificateBook);
            foreach (var (id, e) in loaded?.Agents ?? [])
            {
                agents[id] = e;
            }
        }
        var pki = new AgentPki(dir, ca, time, agents);
        if (!File.Exists(pki.SecretPath))
        {
            pki.RotateJoinSecret();
        }
        return pki;
    }

    /// <summary>The current join token (read from disk each time, so 'berth join-token --rotate' applies to a running server).</summary>
    public JoinToken JoinToken => new(CaFingerprint, File.ReadAllText(SecretPath).Trim());

    /// <summary>Replaces the join secret: agents that joined keep their certificates; the old token admits nobody new.</summary>
    public JoinToken RotateJoinSecret()
    {
        WriteSecretFile(SecretPath, JoinToken.NewSecret() + "\n");
        return JoinToken;
    }

    /// <summary>
    /// The agent port's serving certificate, carrying every one of <paramref name="names"/> (DNS names or IP
    /// addresses) plus localhost, 127.0.0.1 and ::1; the one on disk when it still carries them all and has more than
    /// 30 days left, else a new one.
    /// </summary>
    public X509Certificate2 ServingCertificate(IEnumerable<string> names)
    {
        var wanted = new SortedSet<string>(names.Where(n => !string.IsNullOrWhiteSpace(n)).Select(n => n.Trim().ToLowerInvariant()), StringComparer.Ordinal)
        {
            "localhost", "127.0.0.1", "::1",
        };
        var crt = Path.Combine(Directory, "agent-port.crt");
        var key = Path.Combine(Directory, "agent-port.key");
        lock (_lock)
        {
            if (File.Exists(crt) && File.Exists(key))
            {
                var existing = X509Certificate2.CreateFromPemFile(crt, key);
                if (existing.Issuer == Ca.Subject && ChainsToCa(existing) && existing.NotAfter.ToUniversalTime() > _time.GetUtcNow().UtcDateTime.AddDays(30)
                    && wanted.IsSubsetOf(SubjectAlternativeNames(existing)))
                {
                    return existing;
                }
                existing.Dispose();
            }
            using var k = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var req = new CertificateRequest("CN=Berth agent port, O=Berth", k, HashAlgorithmName.SHA256);
            var san = new SubjectAlternativeNameBuilder();
            foreach (var n in wanted)
            {
                if (IPAddress.TryParse(n, out var ip))
                {
                    san.AddIpAddress(ip);
                }
                else
                {
                    san.AddDnsName(n);
                }
            }
            req.CertificateExtensions.Add(san.Build());
            req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
            req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
            req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false)); // serverAuth
            req.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Ca, true, false));
            var now = _time.GetUtcNow();
            using var issued = req.Create(Ca, now - Backdate, Min(now + ServingLifetime, Ca.NotAfter), NewSerial());
            var withKey = issued.CopyWithPrivateKey(k);
            WriteSecretFile(key, k.ExportPkcs8PrivateKeyPem());
            WriteFile(crt, withKey.ExportCertificatePem());
            return withKey;
        }
    }

    /// <summary>
    /// Signs a client certificate for <paramref name="agentId"/> with the key of <paramref name="certificateRequest"/>
    /// (PKCS#10 DER, its signature checked) when <paramref name="joinSecret"/> is the current one and the agent id has
    /// no live certificate yet; throws <see cref="AgentJoinRefusedException"/> saying why not.
    /// </summary>
    public X509Certificate2 IssueAgentCertificate(string joinSecret, string agentId, ReadOnlySpan<byte> certificateRequest)
    {
        if (!JoinToken.SecretMatches(JoinToken.Secret, joinSecret))
        {
            throw new AgentJoinRefusedException("the join token's secret is not this server's current one (it may have been rotated: print the current token on the server with 'berth join-token')");
        }
        if (!IsValidAgentId(agentId))
        {
            throw new AgentJoinRefusedException("agentId: 1 to 64 letters, digits, '-' or '_'");
        }
        CertificateRequest csr;
        try
        {
            csr = CertificateRequest.LoadSigningRequest(certificateRequest.ToArray(), HashAlgorithmName.SHA256, CertificateRequestLoadOptions.Default, RSASignaturePadding.Pkcs1);
        }
        catch (CryptographicException e)
        {
            throw new AgentJoinRefusedException($"certificateRequest: not a valid signed PKCS#10 request ({e.Message})");
        }
        lock (_lock)
        {
            if (_agents.TryGetValue(agentId, out var known))
            {
                throw new AgentJoinRefusedException(known.RevokedAt is not null
                    ? $"agent {agentId} was revoked (its container instance was deregistered); to join this host again, remove the agent's data directory (agent.json and tls/) and join with a new identity"
                    : $"agent {agentId} has already joined and holds a certificate; an agent joins once, and a second host with a copy of its identity is refused (if this host lost its tls/ directory, remove its agent.json too and join as a new container instance)");
            }
            var req = new CertificateRequest(new X500DistinguishedName($"CN={agentId}, O=Berth agent"), csr.PublicKey, HashAlgorithmName.SHA256);
            var san = new SubjectAlternativeNameBuilder();
            san.AddUri(AgentUri(agentId));
            req.CertificateExtensions.Add(san.Build());
            req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
            req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
            req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false)); // clientAuth
            req.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Ca, true, false));
            var now = _time.GetUtcNow();
            var serial = NewSerial();
            var cert = req.Create(Ca, now - Backdate, Min(now + AgentCertificateLifetime, Ca.NotAfter), serial);
            _agents[agentId] = new AgentCertificateEntry { Serial = cert.SerialNumber, IssuedAt = now };
            SaveBook();
            return cert;
        }
    }

    /// <summary>
    /// Why <paramref name="certificate"/> may not speak for <paramref name="agentId"/>, or null when it may: it chains
    /// to this CA, names that agent, is the certificate issued to it last, and the agent is not revoked.
    /// </summary>
    public string? Authorize(X509Certificate2? certificate, string agentId)
    {
        if (certificate is null)
        {
            return "the agent port requires a client certificate: join first with 'berth agent --server https://HOST:PORT --join TOKEN'";
        }
        if (!ChainsToCa(certificate))
        {
            return "the client certificate was not issued by this server's CA";
        }
        var named = AgentIdOf(certificate);
        if (!string.Equals(named, agentId, StringComparison.Ordinal))
        {
            return $"the client certificate belongs to agent {named}, not to agent {agentId}: an agent may only register as itself";
        }
        lock (_lock)
        {
            if (!_agents.TryGetValue(agentId, out var e))
            {
                return $"agent {agentId} holds no certificate issued by this server";
            }
            if (e.RevokedAt is not null)
            {
                return $"agent {agentId} was revoked at {e.RevokedAt:u} (its container instance was deregistered); to join this host again, remove the agent's data directory (agent.json and tls/) and join with a new identity";
            }
            if (!string.Equals(e.Serial, certificate.SerialNumber, StringComparison.OrdinalIgnoreCase))
            {
                return $"the client certificate (serial {certificate.SerialNumber}) is not the one issued to agent {agentId}";
            }
        }
        return null;
    }

    /// <summary>True when the agent id holds a certificate and has been revoked.</summary>
    public bool IsRevoked(string agentId)
    {
        lock (_lock)
        {
            return _agents.TryGetValue(agentId, out var e) && e.RevokedAt is not null;
        }
    }

    /// <summary>Revokes the certificate of <paramref name="agentId"/> (no-op for an agent that never joined with one).</summary>
    public bool Revoke(string agentId)
    {
        lock (_lock)
        {
            if (!_agents.TryGetValue(agentId, out var e) || e.RevokedAt is not null)
            {
                return false;
            }
            _agents[agentId] = e with { RevokedAt = _time.GetUtcNow() };
            SaveBook();
            return true;
        }
    }

    /// <summary>True when <paramref name="certificate"/> was signed by this CA and is within its validity.</summary>
    public bool ChainsToCa(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(CaPublic);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = _time.GetUtcNow().UtcDateTime;
        return chain.Build(certificate) && chain.ChainElements[^1].Certificate.RawData.AsSpan().SequenceEqual(CaPublic.RawData);
    }

    /// <summary>The agent id a client certificate names (its subject CN).</summary>
    public static string? AgentIdOf(X509Certificate2 certificate)
        => certificate?.GetNameInfo(X509NameType.SimpleName, forIssuer: false);

    private static Uri AgentUri(string agentId) => new($"urn:berth:agent:{agentId}");

    private static bool IsValidAgentId(string id) => id is { Length: > 0 and <= 64 } && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');

    private static IEnumerable<string> SubjectAlternativeNames(X509Certificate2 cert)
    {
        foreach (var ext in cert.Extensions.OfType<X509SubjectAlternativeNameExtension>())
        {
            foreach (var d in ext.EnumerateDnsNames())
            {
                yield return d.ToLowerInvariant();
            }
            foreach (var ip in ext.EnumerateIPAddresses())
            {
                yield return ip.ToString().ToLowerInvariant();
            }
        }
    }

    private static byte[] NewSerial()
    {
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F; // positive
        serial[0] |= 0x01; // no leading zero byte to be trimmed
        return serial;
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTime b) => a.UtcDateTime < b.ToUniversalTime() ? a : new DateTimeOffset(b.ToUniversalTime());

    private void SaveBook()
    {
        var book = new AgentCertificateBook { Agents = new SortedDictionary<string, AgentCertificateEntry>(_agents, StringComparer.Ordinal) };
        WriteFile(BookPath, JsonSerializer.Serialize(book, PkiJsonContext.Default.AgentCertificateBook));
    }

    private static void WriteFile(string path, string text) => Write(path, text, secret: false);

    private static void WriteSecretFile(string path, string text) => Write(path, text, secret: true);

    private static void Write(string path, string text, bool secret)
    {
        // Write-then-rename: a crash leaves the old file or the new one; secrets are 0600 before they hold anything.
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

/// <summary>A join the server refused; the message says why and is sent to the agent.</summary>
public sealed class AgentJoinRefusedException(string message) : Exception(message);

internal sealed record AgentCertificateEntry
{
    [JsonPropertyName("serial")] public required string Serial { get; init; }
    [JsonPropertyName("issuedAt")] public DateTimeOffset IssuedAt { get; init; }
    [JsonPropertyName("revokedAt")] public DateTimeOffset? RevokedAt { get; init; }
}

internal sealed class AgentCertificateBook
{
    [JsonPropertyName("agents")] public SortedDictionary<string, AgentCertificateEntry> Agents { get; init; } = new(StringComparer.Ordinal);
}

[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(AgentCertificateBook))]
internal sealed partial class PkiJsonContext : JsonSerializerContext;
