using System.Net;
using System.Text;

namespace Berth.LoadBalancer.DataPlane.Fast;

/// <summary>
/// A request head as the fast path reads it, and its rewrite for the target: the request line and the client's headers
/// as sent, minus hop-by-hop ones (Connection, Keep-Alive, Proxy-Connection, TE, Trailer) and the X-Forwarded-* the
/// load balancer sets, plus X-Forwarded-For (the client's address appended), -Proto, -Port and X-Amzn-Trace-Id (kept
/// when the client's has a Root). <see cref="Length"/> is -1 for anything Kestrel must see instead: not HTTP/1.1, a
/// target that is not a plain path (escapes, dot segments, absolute or asterisk form), Upgrade, Expect,
/// Transfer-Encoding, a repeated or odd Content-Length, a missing or odd Host, a malformed line. Headers named in the
/// Connection header are left out (hop-by-hop, RFC 9110 7.6.1), which Kestrel cannot do: it keeps only the options it
/// knows of the Connection header, so a request handed over still forwards them.
/// </summary>
internal readonly struct RequestHead
{
    public int Length { get; init; }
    public long ContentLength { get; init; }
    public bool ClientClose { get; init; }
    public bool IsHead { get; init; }

    /// <summary>GET, HEAD, OPTIONS, TRACE, PUT or DELETE: safe to send again on a new connection (RFC 9110 9.2.2).</summary>
    public bool Idempotent { get; init; }
    public int MethodLength { get; init; }
    public int TargetStart { get; init; }
    public int TargetLength { get; init; }
    public int HostStart { get; init; }
    public int HostLength { get; init; }

    private static readonly RequestHead Refused = new() { Length = -1 };

    public static RequestHead Rewrite(ReadOnlySpan<byte> head, Span<byte> output, ReadOnlySpan<byte> remote, ReadOnlySpan<byte> port, DateTimeOffset now)
    {
        var lineEnd = head.IndexOf(HttpWire.Crlf);
        var line = head[..lineEnd];
        var sp1 = line.IndexOf((byte)' ');
        var sp2 = line.LastIndexOf((byte)' ');
        if (sp1 <= 0 || sp2 <= sp1 + 1 || !line[(sp2 + 1)..].SequenceEqual("HTTP/1.1"u8))
        {
            return Refused;
        }
        var method = line[..sp1];
        foreach (var c in method)
        {
            if ((uint)(c - 'A') > 'Z' - 'A')
            {
                return Refused;
            }
        }
        var target = line[(sp1 + 1)..sp2];
        if (target[0] != '/' || !PlainTarget(target))
        {
            return Refused;
        }
        // Headers the Connection header names are for this hop only (RFC 9110 7.6.1): found first, left out below.
        Span<Range> named = stackalloc Range[8];
        var namedCount = 0;
        if (head.IndexOf("onnection"u8) >= 0 && !ConnectionOptions(head[(lineEnd + 2)..], lineEnd + 2, named, out namedCount))
        {
            return Refused;
        }
        var w = HttpWire.Put(output, 0, head[..(lineEnd + 2)]);
        long contentLength = -1;
        var clientClose = false;
        int hostStart = -1, hostLength = 0;
        int xffStart = -1, xffLength = 0;
        var hasTrace = false;
        var pos = lineEnd + 2;
        while (true)
        {
            var end = head[pos..].IndexOf(HttpWire.Crlf);
            if (end == 0)
            {
                break; // the blank line
            }
            var headerLine = head.Slice(pos, end);
            if (!HttpWire.SplitHeader(headerLine, out var name, out var value))
            {
                return Refused;
            }
            var copy = true;
            switch (name.Length)
            {
                case 2 when HttpWire.NameIs(name, "te"u8):
                case 7 when HttpWire.NameIs(name, "trailer"u8):
                case 10 when HttpWire.NameIs(name, "keep-alive"u8):
                case 16 when HttpWire.NameIs(name, "proxy-connection"u8):
                case 17 when HttpWire.NameIs(name, "x-forwarded-proto"u8):
                case 16 when HttpWire.NameIs(name, "x-forwarded-port"u8):
                    copy = false;
                    break;
                case 6 when HttpWire.NameIs(name, "expect"u8):
                case 7 when HttpWire.NameIs(name, "upgrade"u8):
                case 17 when HttpWire.NameIs(name, "transfer-encoding"u8):
                case 14 when HttpWire.NameIs(name, "http2-settings"u8):
                    return Refused;
                case 14 when HttpWire.NameIs(name, "content-length"u8):
                    if (contentLength >= 0 || !HttpWire.TryParseLength(value, out contentLength))
                    {
                        return Refused;
                    }
                    break;
                case 10 when HttpWire.NameIs(name, "connection"u8):
                    copy = false;
                    foreach (var range in value.Split((byte)','))
                    {
                        clientClose |= HttpWire.TokenIs(value[range], "close"u8);
                    }
                    break;
                case 4 when HttpWire.NameIs(name, "host"u8):
                    if (hostStart >= 0 || !PlainHost(value))
                    {
                        return Refused;
                    }
                    hostStart = pos + (headerLine.Length - headerLine[(name.Length + 1)..].TrimStart(" \t"u8).Length);
                    hostLength = value.Length;
                    break;
                case 15 when HttpWire.NameIs(name, "x-forwarded-for"u8):
                    if (xffStart >= 0)
                    {
                        return Refused;
                    }
                    copy = false;
                    xffStart = pos + (headerLine.Length - headerLine[(name.Length + 1)..].TrimStart(" \t"u8).Length);
                    xffLength = value.Length;
                    break;
                case 15 when HttpWire.NameIs(name, "x-amzn-trace-id"u8):
                    if (value.IndexOf("Root="u8) >= 0)
                    {
                        hasTrace = true;
                    }
                    else
                    {
                        copy = false;
                    }
                    break;
                default:
                    break;
            }
            for (var i = 0; i < namedCount && copy; i++)
            {
                copy = !EqualsIgnoreCase(name, head[named[i]]);
            }
            if (copy)
            {
                w = HttpWire.Put(output, w, head.Slice(pos, end + 2));
            }
            pos += end + 2;
        }
        if (hostStart < 0)
        {
            return Refused;
        }
        w = HttpWire.Put(output, w, "X-Forwarded-For: "u8);
        if (xffLength > 0)
        {
            w = HttpWire.Put(output, w, head.Slice(xffStart, xffLength));
            w = HttpWire.Put(output, w, ", "u8);
        }
        w = HttpWire.Put(output, w, remote);
        w = HttpWire.Put(output, w, "\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: "u8);
        w = HttpWire.Put(output, w, port);
        w = HttpWire.Put(output, w, HttpWire.Crlf);
        if (!hasTrace)
        {
            w = HttpWire.Put(output, w, "X-Amzn-Trace-Id: "u8);
            TraceId.Write(output[w..], now);
            w += TraceId.Length;
            w = HttpWire.Put(output, w, HttpWire.Crlf);
        }
        w = HttpWire.Put(output, w, HttpWire.Crlf);
        return new RequestHead
        {
            Length = w,
            ContentLength = Math.Max(0, contentLength),
            ClientClose = clientClose,
            IsHead = method.SequenceEqual("HEAD"u8),
            Idempotent = method.SequenceEqual("GET"u8) || method.SequenceEqual("HEAD"u8) || method.SequenceEqual("OPTIONS"u8)
                || method.SequenceEqual("TRACE"u8) || method.SequenceEqual("PUT"u8) || method.SequenceEqual("DELETE"u8),
            MethodLength = sp1,
            TargetStart = sp1 + 1,
            TargetLength = target.Length,
            HostStart = hostStart,
            HostLength = hostLength,
        };
    }

    /// <summary>
    /// The header names listed in Connection headers (besides keep-alive and close), as ranges of the head; false when
    /// they cannot be honoured here (Upgrade, which is Kestrel's, or more than <paramref name="named"/> holds).
    /// </summary>
    private static bool ConnectionOptions(ReadOnlySpan<byte> headers, int offset, Span<Range> named, out int count)
    {
        count = 0;
        var pos = 0;
        int end;
        while ((end = headers[pos..].IndexOf(HttpWire.Crlf)) > 0)
        {
            var line = headers.Slice(pos, end);
            if (HttpWire.SplitHeader(line, out var name, out var value) && HttpWire.NameIs(name, "connection"u8))
            {
                var valueStart = offset + pos + (line.Length - line[(name.Length + 1)..].TrimStart(" \t"u8).Length);
                foreach (var range in value.Split((byte)','))
                {
                    var raw = value[range];
                    var token = raw.Trim(" \t"u8);
                    if (token.Length == 0 || HttpWire.TokenIs(token, "keep-alive"u8) || HttpWire.TokenIs(token, "close"u8))
                    {
                        continue;
                    }
                    if (HttpWire.TokenIs(token, "upgrade"u8) || count == named.Length)
                    {
                        return false;
                    }
                    var start = valueStart + range.Start.GetOffset(value.Length) + (raw.Length - raw.TrimStart(" \t"u8).Length);
                    named[count++] = new Range(start, start + token.Length);
                }
            }
            pos += end + 2;
        }
        return true;
    }

    private static bool EqualsIgnoreCase(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
        => a.Length == b.Length && System.Text.Ascii.EqualsIgnoreCase(a, b);

    /// <summary>
    /// A path (and query) Kestrel would hand on unchanged: visible ASCII, no percent-escapes, no dot segments, no
    /// fragment. Anything else goes through Kestrel, whose decoding and normalising the rules and YARP then see.
    /// </summary>
    private static bool PlainTarget(ReadOnlySpan<byte> target)
    {
        var query = target.IndexOf((byte)'?');
        var path = query < 0 ? target : target[..query];
        foreach (var c in target)
        {
            if (c is <= 0x20 or >= 0x7f or (byte)'#')
            {
                return false;
            }
        }
        return path.IndexOf((byte)'%') < 0 && path.IndexOf("/."u8) < 0 && path.IndexOf("//"u8) < 0 && path.IndexOf((byte)'\\') < 0;
    }

    private static bool PlainHost(ReadOnlySpan<byte> host)
    {
        if (host.Length == 0)
        {
            return false;
        }
        foreach (var c in host)
        {
            if (!(char.IsAsciiLetterOrDigit((char)c) || c is (byte)'-' or (byte)'.' or (byte)':' or (byte)'[' or (byte)']' or (byte)'_'))
            {
                return false;
            }
        }
        return true;
    }
}

/// <summary>A target's response head: status, how its body is delimited, and whether it carries hop-by-hop headers.</summary>
internal readonly struct ResponseHead
{
    public bool Valid { get; init; }
    public int Status { get; init; }
    public int Length { get; init; }
    public long ContentLength { get; init; }
    public bool Chunked { get; init; }
    public bool TargetCloses { get; init; }
    public bool HasHopByHop { get; init; }

    public static ResponseHead Parse(ReadOnlySpan<byte> head)
    {
        var lineEnd = head.IndexOf(HttpWire.Crlf);
        var line = head[..lineEnd];
        if (line.Length < 12 || !line.StartsWith("HTTP/1."u8) || line[7] is not ((byte)'0' or (byte)'1') || line[8] != ' '
            || !char.IsAsciiDigit((char)line[9]) || !char.IsAsciiDigit((char)line[10]) || !char.IsAsciiDigit((char)line[11])
            || (line.Length > 12 && line[12] != ' '))
        {
            return default;
        }
        var http10 = line[7] == '0';
        var status = ((line[9] - '0') * 100) + ((line[10] - '0') * 10) + (line[11] - '0');
        long contentLength = -1;
        var chunked = false;
        var transferEncoding = false;
        var closes = http10;
        var hop = http10;
        var pos = lineEnd + 2;
        while (true)
        {
            var end = head[pos..].IndexOf(HttpWire.Crlf);
            if (end == 0)
            {
                break;
            }
            if (!HttpWire.SplitHeader(head.Slice(pos, end), out var name, out var value))
            {
                return default;
            }
            if (HttpWire.NameIs(name, "content-length"u8))
            {
                if (!HttpWire.TryParseLength(value, out var cl) || (contentLength >= 0 && cl != contentLength))
                {
                    return default;
                }
                contentLength = cl;
            }
            else if (HttpWire.NameIs(name, "transfer-encoding"u8))
            {
                var last = value.LastIndexOf((byte)',');
                chunked = HttpWire.TokenIs(last < 0 ? value : value[(last + 1)..], "chunked"u8);
                transferEncoding = true;
                hop |= !chunked; // any other coding: the body runs to the close, and Transfer-Encoding must not reach the client as if chunked
                closes |= !chunked;
            }
            else if (HttpWire.NameIs(name, "connection"u8))
            {
                hop = true;
                foreach (var range in value.Split((byte)','))
                {
                    if (HttpWire.TokenIs(value[range], "close"u8))
                    {
                        closes = true;
                    }
                    else if (http10 && HttpWire.TokenIs(value[range], "keep-alive"u8))
                    {
                        closes = false;
                    }
                }
            }
            else if (HttpWire.NameIs(name, "keep-alive"u8) || HttpWire.NameIs(name, "proxy-connection"u8))
            {
                hop = true;
            }
            pos += end + 2;
        }
        if (transferEncoding)
        {
            // Transfer-Encoding overrides Content-Length, which then must not reach the client (RFC 9112 6.3): Rewrite drops it.
            hop |= contentLength >= 0;
            contentLength = -1;
        }
        return new ResponseHead
        {
            Valid = true,
            Status = status,
            Length = head.Length,
            ContentLength = contentLength,
            Chunked = chunked,
            TargetCloses = closes,
            HasHopByHop = hop,
        };
    }

    /// <summary>The head for the client: HTTP/1.1, without Connection, Keep-Alive and Proxy-Connection; Connection: close when asked.</summary>
    public static int Rewrite(ReadOnlySpan<byte> head, Span<byte> output, bool close)
    {
        var lineEnd = head.IndexOf(HttpWire.Crlf);
        var w = HttpWire.Put(output, 0, "HTTP/1.1"u8);
        w = HttpWire.Put(output, w, head[8..(lineEnd + 2)]);
        var pos = lineEnd + 2;
        // The codings are every Transfer-Encoding line's list joined: the last line says whether the body is chunked.
        var transferEncoding = LastValue(head[pos..], "transfer-encoding"u8, out var codings);
        var lastComma = codings.LastIndexOf((byte)',');
        var chunked = transferEncoding && HttpWire.TokenIs(lastComma < 0 ? codings : codings[(lastComma + 1)..], "chunked"u8);
        while (true)
        {
            var end = head[pos..].IndexOf(HttpWire.Crlf);
            if (end == 0)
            {
                break;
            }
            HttpWire.SplitHeader(head.Slice(pos, end), out var name, out _);
            var te = HttpWire.NameIs(name, "transfer-encoding"u8);
            var skip = HttpWire.NameIs(name, "connection"u8) || HttpWire.NameIs(name, "keep-alive"u8) || HttpWire.NameIs(name, "proxy-connection"u8)
                || (te && !chunked) || (transferEncoding && HttpWire.NameIs(name, "content-length"u8));
            if (!skip)
            {
                w = HttpWire.Put(output, w, head.Slice(pos, end + 2));
            }
            pos += end + 2;
        }
        if (close)
        {
            w = HttpWire.Put(output, w, "Connection: close\r\n"u8);
        }
        return HttpWire.Put(output, w, HttpWire.Crlf);
    }

    private static bool LastValue(ReadOnlySpan<byte> headers, ReadOnlySpan<byte> lowerName, out ReadOnlySpan<byte> value)
    {
        value = default;
        var found = false;
        var pos = 0;
        int end;
        while ((end = headers[pos..].IndexOf(HttpWire.Crlf)) > 0)
        {
            if (HttpWire.SplitHeader(headers.Slice(pos, end), out var name, out var v) && HttpWire.NameIs(name, lowerName))
            {
                value = v;
                found = true;
            }
            pos += end + 2;
        }
        return found;
    }
}

/// <summary>Rule input read from a request head the fast path holds (only for listeners with rules besides the default).</summary>
internal sealed class HeadRuleInput(byte[] head, RequestHead request, IPAddress remote) : IRuleInput
{
    public string Method => Encoding.ASCII.GetString(head, 0, request.MethodLength);

    public string Path
    {
        get
        {
            var target = head.AsSpan(request.TargetStart, request.TargetLength);
            var q = target.IndexOf((byte)'?');
            return Encoding.ASCII.GetString(q < 0 ? target : target[..q]);
        }
    }

    public string Host
    {
        get
        {
            var host = Encoding.ASCII.GetString(head, request.HostStart, request.HostLength);
            if (host.StartsWith('['))
            {
                var close = host.IndexOf(']', StringComparison.Ordinal);
                return close < 0 ? host : host[..(close + 1)];
            }
            var colon = host.LastIndexOf(':');
            return colon < 0 ? host : host[..colon];
        }
    }

    public IPAddress? Remote => remote;

    public IEnumerable<string> Header(string name)
    {
        var wanted = Encoding.ASCII.GetBytes(name.ToLowerInvariant());
        var values = new List<string>();
        var span = head.AsSpan();
        var pos = span.IndexOf(HttpWire.Crlf) + 2;
        while (true)
        {
            var end = span[pos..].IndexOf(HttpWire.Crlf);
            if (end <= 0)
            {
                break;
            }
            if (HttpWire.SplitHeader(span.Slice(pos, end), out var n, out var v) && HttpWire.NameIs(n, wanted))
            {
                values.Add(Encoding.Latin1.GetString(v));
            }
            pos += end + 2;
        }
        return values;
    }

    public IEnumerable<KeyValuePair<string, string>> Query()
    {
        var target = Encoding.ASCII.GetString(head, request.TargetStart, request.TargetLength);
        var q = target.IndexOf('?', StringComparison.Ordinal);
        if (q < 0)
        {
            yield break;
        }
        foreach (var pair in target[(q + 1)..].Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            var key = eq < 0 ? pair : pair[..eq];
            var value = eq < 0 ? "" : pair[(eq + 1)..];
            yield return KeyValuePair.Create(Uri.UnescapeDataString(key.Replace('+', ' ')), Uri.UnescapeDataString(value.Replace('+', ' ')));
        }
    }
}
