using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Berth.Agent;
using Berth.ControlPlane.Agents;
using Berth.Core.Agent;
using Microsoft.Extensions.Time.Testing;

namespace Berth.UnitTests.Agents;

public sealed class JoinTokenTests
{
    private static readonly string Fp = new string('0', 63) + "f";

    [Fact]
    public void ToString_ThenTryParse_RoundTrips()
    {
        var t = new JoinToken(Fp, JoinToken.NewSecret());
        Assert.Matches("^berth-join\\.[0-9a-f]{64}\\.[0-9a-f]{32}$", t.ToString());
        Assert.True(JoinToken.TryParse(t.ToString(), out var back, out var error), error);
        Assert.Equal(t, back);
    }

    [Fact]
    public void TryParse_UpperCaseAndSurroundingSpace_Accepted()
    {
        Assert.True(JoinToken.TryParse($"  berth-join.{Fp.ToUpperInvariant()}.{new string('A', 32)}\n", out var t, out _));
        Assert.Equal(Fp, t.CaFingerprint);
        Assert.Equal(new string('a', 32), t.Secret);
    }

    [Theory]
    [InlineData("", "three parts")]
    [InlineData("berth-join.abc", "three parts")]
    [InlineData("swarm-join.0000000000000000000000000000000000000000000000000000000000000000.00000000000000000000000000000000", "three parts")]
    [InlineData("berth-join.00.00000000000000000000000000000000", "64 hex digits")]
    [InlineData("berth-join.000000000000000000000000000000000000000000000000000000000000000g.00000000000000000000000000000000", "64 hex digits")]
    [InlineData("berth-join.0000000000000000000000000000000000000000000000000000000000000000.secret", "32 hex digits")]
    public void TryParse_Malformed_SaysWhichPart(string text, string expected)
    {
        Assert.False(JoinToken.TryParse(text, out _, out var error));
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }

    [Fact]
    public void SecretMatches_OnlyTheSameSecret()
    {
        var s = JoinToken.NewSecret();
        Assert.True(JoinToken.SecretMatches(s, s));
        Assert.True(JoinToken.SecretMatches(s, s.ToUpperInvariant()));
        Assert.False(JoinToken.SecretMatches(s, s[..^1] + (s[^1] == '0' ? '1' : '0')));
        Assert.False(JoinToken.SecretMatches(s, ""));
        Assert.False(JoinToken.SecretMatches(s, null));
    }
}

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class AgentPkiTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "berth-pki-" + Guid.NewGuid().ToString("N"));
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero));

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void LoadOrCreate_SecondTime_ReusesCaAndSecret_KeysAre0600()
    {
        var first = AgentPki.LoadOrCreate(_dir, _time);
        var again = AgentPki.LoadOrCreate(_dir, _time);
        Assert.Equal(first.CaFingerprint, again.CaFingerprint);
        Assert.Equal(first.JoinToken, again.JoinToken);
        Assert.Equal(JoinToken.Fingerprint(first.Ca), first.JoinToken.CaFingerprint);
        Assert.True(first.Ca.HasPrivateKey);
        Assert.False(first.CaPublic.HasPrivateKey);
        Assert.True(first.Ca.Extensions.OfType<X509BasicConstraintsExtension>().Single().CertificateAuthority);
        foreach (var secret in new[] { "ca.key", "join-secret" })
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_dir, "pki", secret)));
        }
    }

    [Fact]
    public void RotateJoinSecret_NewSecret_OldOneNoLongerJoins()
    {
        var pki = AgentPki.LoadOrCreate(_dir, _time);
        var old = pki.JoinToken;
        var rotated = pki.RotateJoinSecret();
        Assert.NotEqual(old.Secret, rotated.Secret);
        Assert.Equal(old.CaFingerprint, rotated.CaFingerprint);
        Assert.Equal(rotated, AgentPki.LoadOrCreate(_dir, _time).JoinToken); // what 'berth join-token' prints afterwards
        var e = Assert.Throws<AgentJoinRefusedException>(() => pki.IssueAgentCertificate(old.Secret, "a1", Csr(out _)));
        Assert.Contains("rotated", e.Message, StringComparison.Ordinal);
        using var ok = pki.IssueAgentCertificate(rotated.Secret, "a1", Csr(out _));
    }

    [Fact]
    public void ServingCertificate_CarriesTheNamesAndLoopback_ReusedUntilANameIsMissing()
    {
        var pki = AgentPki.LoadOrCreate(_dir, _time);
        using var cert = pki.ServingCertificate(["10.0.0.5", "berth.internal"]);
        var san = cert.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        Assert.Equal(["10.0.0.5", "127.0.0.1", "::1"], san.EnumerateIPAddresses().Select(a => a.ToString()).Order(StringComparer.Ordinal));
        Assert.Equal(["berth.internal", "localhost"], san.EnumerateDnsNames().Order(StringComparer.Ordinal));
        Assert.True(pki.ChainsToCa(cert));
        Assert.True(cert.HasPrivateKey);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_dir, "pki", "agent-port.key")));

        using var same = AgentPki.LoadOrCreate(_dir, _time).ServingCertificate(["berth.internal"]);
        Assert.Equal(cert.Thumbprint, same.Thumbprint);
        using var wider = pki.ServingCertificate(["10.0.0.6"]);
        Assert.NotEqual(cert.Thumbprint, wider.Thumbprint);
        Assert.Contains("10.0.0.6", wider.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateIPAddresses().Select(a => a.ToString()));
    }

    [Fact]
    public void IssueAgentCertificate_ForTheRequestsKey_NamesTheAgent_ClientAuth_OneYear()
    {
        var pki = AgentPki.LoadOrCreate(_dir, _time);
        using var cert = pki.IssueAgentCertificate(pki.JoinToken.Secret, "agent-1", Csr(out var key));
        Assert.Equal("agent-1", AgentPki.AgentIdOf(cert));
        Assert.Equal(key.ExportSubjectPublicKeyInfo(), cert.GetECDsaPublicKey()!.ExportSubjectPublicKeyInfo());
        Assert.Contains(cert.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single().EnhancedKeyUsages.Cast<Oid>(), o => o.Value == "1.3.6.1.5.5.7.3.2");
        Assert.False(cert.Extensions.OfType<X509BasicConstraintsExtension>().Single().CertificateAuthority);
        Assert.Equal(_time.GetUtcNow().UtcDateTime + AgentPki.AgentCertificateLifetime, cert.NotAfter.ToUniversalTime());
        Assert.True(pki.ChainsToCa(cert));
        Assert.Null(pki.Authorize(cert, "agent-1"));
    }

    [Fact]
    public void IssueAgentCertificate_SameAgentTwice_Refused_BadRequestRefused()
    {
        var pki = AgentPki.LoadOrCreate(_dir, _time);
        using var first = pki.IssueAgentCertificate(pki.JoinToken.Secret, "agent-1", Csr(out _));
        Assert.Contains("already joined", Assert.Throws<AgentJoinRefusedException>(() => pki.IssueAgentCertificate(pki.JoinToken.Secret, "agent-1", Csr(out _))).Message, StringComparison.Ordinal);
        // The book survives a restart.
        Assert.Contains("already joined", Assert.Throws<AgentJoinRefusedException>(() => AgentPki.LoadOrCreate(_dir, _time).IssueAgentCertificate(pki.JoinToken.Secret, "agent-1", Csr(out _))).Message, StringComparison.Ordinal);
        Assert.Contains("certificateRequest", Assert.Throws<AgentJoinRefusedException>(() => pki.IssueAgentCertificate(pki.JoinToken.Secret, "agent-2", [1, 2, 3])).Message, StringComparison.Ordinal);
        Assert.Contains("agentId", Assert.Throws<AgentJoinRefusedException>(() => pki.IssueAgentCertificate(pki.JoinToken.Secret, "../x", Csr(out _))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Authorize_OtherAgentsCertificate_ForeignCa_Missing_Revoked_AllRefused()
    {
        var pki = AgentPki.LoadOrCreate(_dir, _time);
        using var a = pki.IssueAgentCertificate(pki.JoinToken.Secret, "agent-a", Csr(out _));
        using var b = pki.IssueAgentCertificate(pki.JoinToken.Secret, "agent-b", Csr(out _));
        Assert.Contains("belongs to agent agent-b, not to agent agent-a", pki.Authorize(b, "agent-a"), StringComparison.Ordinal);
        Assert.Contains("requires a client certificate", pki.Authorize(null, "agent-a"), StringComparison.Ordinal);

        var other = AgentPki.LoadOrCreate(Path.Combine(_dir, "other"), _time);
        using var foreign = other.IssueAgentCertificate(other.JoinToken.Secret, "agent-a", Csr(out _));
        Assert.False(pki.ChainsToCa(foreign));
        Assert.Contains("not issued by this server's CA", pki.Authorize(foreign, "agent-a"), StringComparison.Ordinal);

        Assert.True(pki.Revoke("agent-a"));
        Assert.False(pki.Revoke("agent-a"));
        Assert.False(pki.Revoke("never-joined"));
        Assert.True(pki.IsRevoked("agent-a"));
        Assert.Contains("was revoked", pki.Authorize(a, "agent-a"), StringComparison.Ordinal);
        var reloaded = AgentPki.LoadOrCreate(_dir, _time);
        Assert.True(reloaded.IsRevoked("agent-a"));
        Assert.Contains("was revoked", Assert.Throws<AgentJoinRefusedException>(() => reloaded.IssueAgentCertificate(reloaded.JoinToken.Secret, "agent-a", Csr(out _))).Message, StringComparison.Ordinal);
        Assert.Null(reloaded.Authorize(b, "agent-b"));
    }

    [Fact]
    public void VerifyServer_PinnedCa_AcceptsItsCertificates_RefusesAnotherCasAndWrongNames()
    {
        var pki = AgentPki.LoadOrCreate(_dir, _time);
        var other = AgentPki.LoadOrCreate(Path.Combine(_dir, "other"), _time);
        using var serving = pki.ServingCertificate([]);
        using var impostor = other.ServingCertificate([]);
        Assert.Null(AgentTls.VerifyServer(serving, null, SslPolicyErrors.RemoteCertificateChainErrors, pki.CaFingerprint, pki.CaPublic));
        Assert.Contains("does not chain", AgentTls.VerifyServer(impostor, null, SslPolicyErrors.None, pki.CaFingerprint, pki.CaPublic), StringComparison.Ordinal);
        Assert.NotNull(AgentTls.VerifyServer(impostor, null, SslPolicyErrors.None, pki.CaFingerprint, other.CaPublic)); // CA not the pinned one
        Assert.Contains("--tls-san", AgentTls.VerifyServer(serving, null, SslPolicyErrors.RemoteCertificateNameMismatch, pki.CaFingerprint, pki.CaPublic), StringComparison.Ordinal);
        Assert.NotNull(AgentTls.VerifyServer(null, null, SslPolicyErrors.RemoteCertificateNotAvailable, pki.CaFingerprint, pki.CaPublic));
    }

    private static byte[] Csr(out ECDsa key)
    {
        key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        return new CertificateRequest("CN=whatever-the-agent-asks", key, HashAlgorithmName.SHA256).CreateSigningRequest();
    }
}
