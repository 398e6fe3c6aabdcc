using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace Berth.Aws.Auth;

public enum AuthMode
{
    /// <summary>Any request is admitted, whatever credentials it carries (loopback default).</summary>
    None,
    /// <summary>Every AWS request must be signed with AWS Signature Version 4 by a known credential.</summary>
    SigV4,
}

/// <summary>
/// Authenticates AWS requests at the front doors. In <see cref="AuthMode.SigV4"/> a request must carry an
/// Authorization header (or presigned query parameters) whose signature, recomputed with the credential's
/// secret over the canonical request, matches; its date must be within 15 minutes of the server's clock.
/// </summary>
public sealed class AwsAuthenticator
{
    private static readonly TimeSpan MaxSkew = TimeSpan.FromMinutes(15);
    private readonly ConcurrentDictionary<(string Secret, string Date, string Region, string Service), byte[]> _keys = new();
    private readonly TimeProvider _time;

    public AwsAuthenticator(AuthMode mode, CredentialStore? credentials, TimeProvider time, string accountId = "000000000000", TaskRoleCredentialIssuer? taskRoles = null)
    {
        TaskRoles = taskRoles;
        if (mode == AuthMode.SigV4 && credentials is null)
        {
            throw new ArgumentException("SigV4 needs a credential store.", nameof(credentials));
        }
        Mode = mode;
        Credentials = credentials;
        _time = time;
        AccountId = accountId;
    }

    public AuthMode Mode { get; }

    /// <summary>Verifies the temporary credentials tasks get for their taskRoleArn (null: none are accepted).</summary>
    public TaskRoleCredentialIssuer? TaskRoles { get; }
    public CredentialStore? Credentials { get; }
    public string AccountId { get; }

    public static string ModeName(AuthMode mode) => mode == AuthMode.SigV4 ? "sigv4" : "none";

    /// <summary>
    /// The caller of <paramref name="request"/>, or an <see cref="AwsAuthException"/>. <paramref name="service"/>
    /// is the signing name the credential scope must carry (null when the API is not known yet).
    /// </summary>
    public AwsCaller Authenticate(HttpRequest request, ReadOnlySpan<byte> body, string? service)
    {
        if (Mode == AuthMode.None)
        {
            // Any credentials are accepted, but the region they are scoped to still picks the region served.
            return CredentialScope.RegionOf(request) is { } region ? AwsCaller.Anonymous with { Region = region } : AwsCaller.Anonymous;
        }
        var authorization = request.Headers.Authorization;
        SignatureParts parts;
        if (authorization.Count > 0)
        {
            parts = ParseHeader(authorization.ToString(), request);
        }
        else if (request.Query.ContainsKey("X-Amz-Algorithm"))
        {
            parts = ParseQuery(request);
        }
        else
        {
            throw AwsAuthException.Missing();
        }
        return Verify(parts, request, body, service);
    }

    /// <summary>Throws AccessDeniedException when <paramref name="caller"/> may not call <paramref name="operation"/>.</summary>
    public void Authorize(AwsCaller caller, string service, string operation, string resource = "*")
    {
        if (!Permissions.Allows(caller.Permissions, operation))
        {
            throw AwsAuthException.AccessDenied(
                $"User: {caller.Arn ?? $"arn:aws:iam::{AccountId}:user/{caller.Name}"} is not authorized to perform: {service}:{operation} on resource: {resource} because no identity-based policy allows the {service}:{operation} action");
        }
    }

    private sealed record SignatureParts(string Credential, string[] SignedHeaders, string Signature, string AmzDate, DateTimeOffset Date, bool Presigned, long? ExpiresSeconds, string? SecurityToken);

    private static SignatureParts ParseHeader(string header, HttpRequest request)
    {
        var space = header.IndexOf(' ', StringComparison.Ordinal);
        var algorithm = space < 0 ? header : header[..space];
        if (algorithm != SigV4.Algorithm)
        {
            throw AwsAuthException.Incomplete($"Unsupported AWS 'algorithm': '{algorithm}'. Authorization={header}");
        }
        string? credential = null, signedHeaders = null, signature = null;
        foreach (var raw in (space < 0 ? "" : header[(space + 1)..]).Split([',', ' '], StringSplitOptions.RemoveEmptyEntries))
        {
            var part = raw.Trim();
            if (part.Length == 0)
            {
                continue;
            }
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw AwsAuthException.Incomplete($"'{part}' not a valid key=value pair (missing equal-sign) in Authorization header: '{header}'.");
            }
            var value = part[(eq + 1)..];
            switch (part[..eq])
            {
                case "Credential": credential = value; break;
                case "SignedHeaders": signedHeaders = value; break;
                case "Signature": signature = value; break;
                default: break;
            }
        }
        var dateHeader = request.Headers["X-Amz-Date"].ToString();
        var date = dateHeader.Length > 0 ? dateHeader : request.Headers.Date.ToString();
        var missing = new StringBuilder();
        if (string.IsNullOrEmpty(credential))
        {
            missing.Append("Authorization header requires 'Credential' parameter. ");
        }
        if (string.IsNullOrEmpty(signature))
        {
            missing.Append("Authorization header requires 'Signature' parameter. ");
        }
        if (string.IsNullOrEmpty(signedHeaders))
        {
            missing.Append("Authorization header requires 'SignedHeaders' parameter. ");
        }
        if (date.Length == 0)
        {
            missing.Append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ");
        }
        if (missing.Length > 0)
        {
            throw AwsAuthException.Incomplete(missing.Append("Authorization=").Append(header).ToString());
        }
        var (amzDate, when) = ParseDate(date, iso: dateHeader.Length > 0);
        var token = request.Headers["X-Amz-Security-Token"];
        return new SignatureParts(credential!, signedHeaders!.Split(';'), signature!, amzDate, when, Presigned: false, null, token.Count > 0 ? token.ToString() : null);
    }

    private static SignatureParts ParseQuery(HttpRequest request)
    {
        var q = request.Query;
        var algorithm = q["X-Amz-Algorithm"].ToString();
        if (algorithm != SigV4.Algorithm)
        {
            throw AwsAuthException.Incomplete($"Unsupported AWS 'algorithm': '{algorithm}'.");
        }
        var missing = new StringBuilder();
        foreach (var name in new[] { "X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders", "X-Amz-Date" })
        {
            if (string.IsNullOrEmpty(q[name].ToString()))
            {
                missing.Append(CultureInfo.InvariantCulture, $"AWS query-string parameters must include '{name}'. ");
            }
        }
        if (missing.Length > 0)
        {
            throw AwsAuthException.Incomplete(missing.Append("Re-examine the query-string parameters.").ToString());
        }
        long? expires = null;
        if (q.TryGetValue("X-Amz-Expires", out var e))
        {
            if (!long.TryParse(e.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) || seconds > 604800)
            {
                throw AwsAuthException.Incomplete($"X-Amz-Expires must be a number of seconds between 0 and 604800, not '{e}'.");
            }
            expires = seconds;
        }
        var (amzDate, when) = ParseDate(q["X-Amz-Date"].ToString(), iso: true);
        var token = q["X-Amz-Security-Token"];
        return new SignatureParts(q["X-Amz-Credential"].ToString(), q["X-Amz-SignedHeaders"].ToString().Split(';'), q["X-Amz-Signature"].ToString(),
            amzDate, when, Presigned: true, expires, token.Count > 0 ? token.ToString() : request.Headers["X-Amz-Security-Token"] is { Count: > 0 } h ? h.ToString() : null);
    }

    private static (string AmzDate, DateTimeOffset When) ParseDate(string value, bool iso)
    {
        if (iso)
        {
            if (DateTimeOffset.TryParseExact(value, SigV4.DateFormat, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var d))
            {
                return (value, d);
            }
        }
        else if (DateTimeOffset.TryParseExact(value, "r", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var r))
        {
            return (r.UtcDateTime.ToString(SigV4.DateFormat, CultureInfo.InvariantCulture), r);
        }
        throw AwsAuthException.Incomplete($"Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601");
    }

    private AwsCaller Verify(SignatureParts p, HttpRequest request, ReadOnlySpan<byte> body, string? service)
    {
        var scope = p.Credential.Split('/');
        if (scope.Length != 5)
        {
            throw AwsAuthException.Incomplete($"Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{p.Credential}'");
        }
        var (keyId, scopeDate, region, scopeService, terminator) = (scope[0], scope[1], scope[2], scope[3], scope[4]);
        if (terminator != SigV4.Terminator)
        {
            throw AwsAuthException.InvalidSignature($"Credential should be scoped with a valid terminator: '{SigV4.Terminator}', not '{terminator}'. ");
        }
        if (region.Length == 0)
        {
            throw AwsAuthException.InvalidSignature("Credential should be scoped to a valid region, not ''. ");
        }
        if (service is not null && scopeService != service)
        {
            throw AwsAuthException.InvalidSignature($"Credential should be scoped to correct service: '{service}'. ");
        }
        AwsCredential credential;
        string? assumedRole = null;
        if (TaskRoles is not null && TaskRoleCredentialIssuer.IsTaskToken(p.SecurityToken))
        {
            // A task's role credentials: the token itself says who it is, signed by this server (no table).
            var role = TaskRoles.Verify(keyId, p.SecurityToken!);
            assumedRole = TaskRoleCredentialIssuer.AssumedRoleArn(AccountId, role.RoleArn, role.TaskArn);
            credential = new AwsCredential
            {
                AccessKeyId = role.AccessKeyId,
                SecretAccessKey = role.SecretAccessKey,
                Name = assumedRole[(assumedRole.IndexOf(':', "arn:aws:sts::".Length) + 1)..],
                // Berth has no IAM policies: a role may do what an admin credential may (README, "Task roles").
                Permissions = Auth.Permissions.Admin,
                SessionToken = role.Token,
            };
        }
        else
        {
            credential = Credentials!.Find(keyId) ?? throw AwsAuthException.UnrecognizedClient();
        }
        if (credential.SessionToken is null ? p.SecurityToken is not null
            : p.SecurityToken is null || !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(p.SecurityToken), Encoding.UTF8.GetBytes(credential.SessionToken)))
        {
            throw AwsAuthException.UnrecognizedClient();
        }
        var now = _time.GetUtcNow();
        string NowText() => now.UtcDateTime.ToString(SigV4.DateFormat, CultureInfo.InvariantCulture);
        if (p.Presigned && p.ExpiresSeconds is { } expires && p.Date.AddSeconds(expires) < now)
        {
            throw AwsAuthException.InvalidSignature($"Signature expired: {p.AmzDate} is now earlier than {now.AddSeconds(-expires).UtcDateTime.ToString(SigV4.DateFormat, CultureInfo.InvariantCulture)} ({NowText()} - {expires} sec.)");
        }
        if (!p.Presigned && p.Date < now - MaxSkew)
        {
            throw AwsAuthException.InvalidSignature($"Signature expired: {p.AmzDate} is now earlier than {(now - MaxSkew).UtcDateTime.ToString(SigV4.DateFormat, CultureInfo.InvariantCulture)} ({NowText()} - 15 min.)");
        }
        if (p.Date > now + MaxSkew)
        {
            throw AwsAuthException.InvalidSignature($"Signature not yet current: {p.AmzDate} is still later than {(now + MaxSkew).UtcDateTime.ToString(SigV4.DateFormat, CultureInfo.InvariantCulture)} ({NowText()} + 15 min.)");
        }
        if (!p.AmzDate.StartsWith(scopeDate, StringComparison.Ordinal) || scopeDate.Length != 8)
        {
            throw AwsAuthException.InvalidSignature($"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{scopeDate}' != '{p.AmzDate[..8]}', from '{p.AmzDate}'.");
        }
        if (!p.SignedHeaders.Contains("host", StringComparer.Ordinal))
        {
            throw AwsAuthException.InvalidSignature("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
        }

        var key = _keys.GetOrAdd((credential.SecretAccessKey, scopeDate, region, scopeService), static (k, keys) =>
        {
            if (keys.Count > 4096)
            {
                keys.Clear(); // a bound, not a policy: keys change once a day per credential
            }
            return SigV4.SigningKey(k.Secret, k.Date, k.Region, k.Service);
        }, _keys);
        if (!SignatureMatches(request, p, body, key, scopeDate, region, scopeService))
        {
            throw AwsAuthException.InvalidSignature();
        }
        return new AwsCaller(credential.AccessKeyId, credential.Name, credential.Permissions, region) { Arn = assumedRole };
    }

    /// <summary>
    /// Recomputes the signature and compares it in constant time. The hot path of every authenticated request,
    /// so it builds the canonical request and the string to sign as UTF-8 in a per-thread buffer (no strings),
    /// hashes them in place, and signs with a per-thread HMAC already keyed with the cached signing key
    /// (creating an HMAC context costs more than the hash itself). <see cref="SigV4"/> is the readable reference
    /// the unit tests pin this to.
    /// </summary>
    private static bool SignatureMatches(HttpRequest request, SignatureParts p, ReadOnlySpan<byte> body, byte[] key, string scopeDate, string region, string service)
    {
        var w = t_buffer ??= new ArrayBufferWriter<byte>(1024);
        w.ResetWrittenCount();
        Span<byte> hash = stackalloc byte[32];

        Write(w, request.Method);
        Write(w, "\n");
        string path = request.PathBase + request.Path;
        Write(w, path is "/" or "" ? "/" : SigV4.CanonicalPath(path));
        Write(w, "\n");
        if (request.QueryString.HasValue)
        {
            var query = request.Query.SelectMany(kv => kv.Value.Select(v => new KeyValuePair<string, string>(kv.Key, v ?? "")));
            Write(w, SigV4.CanonicalQuery(p.Presigned ? query.Where(kv => kv.Key != "X-Amz-Signature") : query));
        }
        Write(w, "\n");
        foreach (var name in p.SignedHeaders)
        {
            Write(w, name);
            Write(w, ":");
            var values = request.Headers[name];
            for (var i = 0; i < values.Count; i++)
            {
                if (i > 0)
                {
                    Write(w, ",");
                }
                WriteTrimmed(w, values[i] ?? "");
            }
            Write(w, "\n");
        }
        Write(w, "\n");
        for (var i = 0; i < p.SignedHeaders.Length; i++)
        {
            if (i > 0)
            {
                Write(w, ";");
            }
            Write(w, p.SignedHeaders[i]);
        }
        Write(w, "\n");
        var declared = request.Headers["X-Amz-Content-Sha256"].ToString();
        if (declared == SigV4.UnsignedPayload)
        {
            Write(w, declared);
        }
        else
        {
            Span<char> hex = stackalloc char[64];
            SHA256.HashData(body, hash);
            Convert.TryToHexStringLower(hash, hex, out _);
            if (declared.Length > 0 && !declared.AsSpan().Equals(hex, StringComparison.OrdinalIgnoreCase))
            {
                throw AwsAuthException.InvalidSignature("The provided 'x-amz-content-sha256' header does not match what was computed.");
            }
            if (declared.Length > 0)
            {
                Write(w, declared);
            }
            else
            {
                Write(w, hex);
            }
        }
        SHA256.HashData(w.WrittenSpan, hash);

        // String to sign: algorithm, date, scope, hex of the canonical request's hash.
        w.ResetWrittenCount();
        Write(w, SigV4.Algorithm);
        Write(w, "\n");
        Write(w, p.AmzDate);
        Write(w, "\n");
        Write(w, scopeDate);
        Write(w, "/");
        Write(w, region);
        Write(w, "/");
        Write(w, service);
        Write(w, "/" + SigV4.Terminator + "\n");
        Span<char> canonicalHex = stackalloc char[64];
        Convert.TryToHexStringLower(hash, canonicalHex, out _);
        Write(w, canonicalHex);

        var hmac = t_hmac;
        if (hmac is null || !ReferenceEquals(hmac.Value.Key, key))
        {
            hmac?.Hmac.Dispose();
            hmac = (key, IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, key));
            t_hmac = hmac;
        }
        hmac.Value.Hmac.AppendData(w.WrittenSpan);
        hmac.Value.Hmac.GetHashAndReset(hash);
        Span<char> expected = stackalloc char[64];
        Convert.TryToHexStringLower(hash, expected, out _);
        return CryptographicOperations.FixedTimeEquals(MemoryMarshal.AsBytes((ReadOnlySpan<char>)expected), MemoryMarshal.AsBytes(p.Signature.AsSpan()));
    }

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    // One keyed HMAC per thread, for the signing key it was last used with: requests come mostly from a few
    // credentials, so the key rarely changes between two requests on one thread.
    [ThreadStatic]
    private static (byte[] Key, IncrementalHash Hmac)? t_hmac;

    private static void Write(ArrayBufferWriter<byte> w, ReadOnlySpan<char> text)
    {
        var span = w.GetSpan(Encoding.UTF8.GetMaxByteCount(text.Length));
        w.Advance(Encoding.UTF8.GetBytes(text, span));
    }

    /// <summary>A header value with leading and trailing spaces removed and runs of spaces inside collapsed to one.</summary>
    private static void WriteTrimmed(ArrayBufferWriter<byte> w, string value)
    {
        var span = value.AsSpan().Trim();
        if (!span.Contains("  ", StringComparison.Ordinal))
        {
            Write(w, span);
            return;
        }
        var chars = ArrayPool<char>.Shared.Rent(span.Length);
        var n = 0;
        var space = false;
        foreach (var c in span)
        {
            if (c == ' ')
            {
                space = true;
                continue;
            }
            if (space)
            {
                chars[n++] = ' ';
                space = false;
            }
            chars[n++] = c;
        }
        Write(w, chars.AsSpan(0, n));
        ArrayPool<char>.Shared.Return(chars);
    }
}
