using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using Berth.Aws.Elbv2;
using Berth.LoadBalancer.DataPlane;
using Berth.LoadBalancer.DataPlane.Fast;
using Microsoft.AspNetCore.Http;

namespace Berth.UnitTests.LoadBalancer;

/// <summary>The fast path's byte-level parsing: heads, chunked bodies, rule input read from a head, the hand-over line.</summary>
public sealed partial class FastPathParsingTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.FromUnixTimeSeconds(0x5f5e1000);

    private static byte[] B(string s) => Encoding.Latin1.GetBytes(s);

    private static string S(ReadOnlySpan<byte> b) => Encoding.Latin1.GetString(b);

    [GeneratedRegex("^X-Amzn-Trace-Id: Root=1-[0-9a-f]{8}-[0-9a-f]{24}\r\n", RegexOptions.Multiline)]
    private static partial Regex TraceLine();

    private static (RequestHead Head, string Output) Rewrite(string head, string remote = "10.0.0.9", string port = "80")
    {
        var input = B(head);
        Assert.Equal(input.Length, HttpWire.HeadEnd(input)); // the test heads are exactly one head
        var output = new byte[input.Length + 512];
        var r = RequestHead.Rewrite(input, output, B(remote), B(port), Now);
        return (r, r.Length < 0 ? "" : S(output.AsSpan(0, r.Length)));
    }

    private static string Trailer(string remote = "10.0.0.9") => $"X-Forwarded-For: {remote}\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 80\r\n";

    // ---- HttpWire ----

    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY\r\n\r\n", 27)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\n", -1)]
    [InlineData("GET / HTTP/1.1\nHost: a\n\n", -1)]
    [InlineData("", -1)]
    public void HeadEnd_FindsTheFirstBlankLine(string data, int expected) => Assert.Equal(expected, HttpWire.HeadEnd(B(data)));

    [Theory]
    [InlineData("0", 0L)]
    [InlineData("42", 42L)]
    [InlineData("000", 0L)]
    [InlineData("999999999999999999", 999999999999999999L)]
    [InlineData("9999999999999999999", -1L)]
    [InlineData("", -1L)]
    [InlineData("+1", -1L)]
    [InlineData("-1", -1L)]
    [InlineData(" 1", -1L)]
    [InlineData("1 ", -1L)]
    [InlineData("1 2", -1L)]
    [InlineData("0x1", -1L)]
    [InlineData("1,1", -1L)]
    public void TryParseLength_DigitsOnly(string value, long expected)
    {
        Assert.Equal(expected >= 0, HttpWire.TryParseLength(B(value), out var length));
        if (expected >= 0)
        {
            Assert.Equal(expected, length);
        }
    }

    [Theory]
    [InlineData("Content-Length", "content-length", true)]
    [InlineData("CONTENT-LENGTH", "content-length", true)]
    [InlineData("content-length", "content-length", true)]
    [InlineData("Content-Lengt", "content-length", false)]
    [InlineData("Content_Length", "content-length", false)]
    [InlineData("Content-Lengthx", "content-length", false)]
    [InlineData("[ost", "{ost", false)] // only A-Z fold
    public void NameIs_FoldsAsciiLettersOnly(string name, string lower, bool expected) => Assert.Equal(expected, HttpWire.NameIs(B(name), B(lower)));

    [Theory]
    [InlineData("Name: value", "Name", "value")]
    [InlineData("Name:value", "Name", "value")]
    [InlineData("Name: \t value \t ", "Name", "value")]
    [InlineData("Name:", "Name", "")]
    [InlineData("Name: a\tb c", "Name", "a\tb c")]
    [InlineData("Name: a:b", "Name", "a:b")]
    [InlineData("Name: caf\u00e9", "Name", "caf\u00e9")] // obs-text is allowed
    [InlineData(": value", null, null)]
    [InlineData("Name value", null, null)]
    [InlineData("Na me: value", null, null)]
    [InlineData("Name : value", null, null)]
    [InlineData("Name\t: value", null, null)]
    [InlineData(" Name: value", null, null)]
    [InlineData("\tName: value", null, null)]
    [InlineData("Name: a\u0000b", null, null)]
    [InlineData("Name: a\u0001b", null, null)]
    [InlineData("Name: a\rb", null, null)]
    [InlineData("Name: a\nb", null, null)]
    [InlineData("Name: a\u001fb", null, null)]
    [InlineData("Name: a\u007fb", null, null)]
    public void SplitHeader(string line, string? name, string? value)
    {
        var ok = HttpWire.SplitHeader(B(line), out var n, out var v);
        Assert.Equal(name is not null, ok);
        if (ok)
        {
            Assert.Equal(name, S(n));
            Assert.Equal(value, S(v));
        }
    }

    // ---- ChunkedScanner ----

    public static readonly TheoryData<string> ValidChunkedBodies = new()
    {
        "0\r\n\r\n",
        "5\r\nhello\r\n0\r\n\r\n",
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        "000005\r\nhello\r\n00\r\n\r\n",
        "A\r\n0123456789\r\n0\r\n\r\n",
        "a\r\n0123456789\r\n0\r\n\r\n",
        "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
        "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
        "4\r\n\r\n\r\n\r\n0\r\n\r\n", // data that looks like line ends
        "5;name=value\r\nhello\r\n0\r\n\r\n",
        "5;a;b=\"q;uoted\"\r\nhello\r\n0;last\r\n\r\n",
        "5 ;ext\r\nhello\r\n0\r\n\r\n",
        "5\t\r\nhello\r\n0\r\n\r\n",
        "3\r\nabc\r\n0\r\nX-Checksum: 1234\r\n\r\n",
        "3\r\nabc\r\n0\r\nX-A: 1\r\nX-B: two words\r\n\r\n",
    };

    [Theory]
    [MemberData(nameof(ValidChunkedBodies))]
    public void Chunked_WholeBody_EndsAtItsEnd(string body)
    {
        var bytes = B(body);
        var scanner = default(ChunkedScanner);
        Assert.Equal(bytes.Length, scanner.Scan(bytes));
        Assert.True(scanner.Done);
        Assert.False(scanner.Invalid);
    }

    [Theory]
    [MemberData(nameof(ValidChunkedBodies))]
    public void Chunked_BytesAfterTheEnd_AreNotConsumed(string body)
    {
        var bytes = B(body + "HTTP/1.1 200 OK\r\n\r\n");
        var scanner = default(ChunkedScanner);
        Assert.Equal(body.Length, scanner.Scan(bytes));
        Assert.True(scanner.Done);
        Assert.Equal(0, scanner.Scan(bytes.AsSpan(body.Length)));
        Assert.True(scanner.Done);
    }

    [Theory]
    [MemberData(nameof(ValidChunkedBodies))]
    public void Chunked_ByteByByte_SameEnd(string body)
    {
        var bytes = B(body + "XYZ");
        var scanner = default(ChunkedScanner);
        var consumed = 0;
        for (var i = 0; i < bytes.Length; i++)
        {
            var used = scanner.Scan(bytes.AsSpan(i, 1));
            Assert.False(scanner.Invalid, $"invalid at byte {i}");
            Assert.Equal(i < body.Length ? 1 : 0, used);
            Assert.Equal(i >= body.Length - 1, scanner.Done);
            consumed += used;
        }
        Assert.Equal(body.Length, consumed);
    }

    [Theory]
    [MemberData(nameof(ValidChunkedBodies))]
    public void Chunked_EverySplitPoint_SameEnd(string body)
    {
        var bytes = B(body + "NEXT");
        for (var split = 0; split <= bytes.Length; split++)
        {
            var scanner = default(ChunkedScanner);
            var first = scanner.Scan(bytes.AsSpan(0, split));
            Assert.Equal(Math.Min(split, body.Length), first);
            Assert.Equal(split >= body.Length, scanner.Done);
            var second = scanner.Scan(bytes.AsSpan(split));
            Assert.Equal(body.Length, first + second);
            Assert.True(scanner.Done, $"split at {split}");
            Assert.False(scanner.Invalid);
        }
    }

    [Fact]
    public void Chunked_LargeChunks_AnySplit()
    {
        var body = "fffff\r\n" + new string('x', 0xfffff) + "\r\n10000;big\r\n" + new string('y', 0x10000) + "\r\n0\r\nX-T: 1\r\n\r\n";
        var bytes = B(body + "NEXT");
        foreach (var split in new[] { 0, 1, 7, 8, 1000, 0xfffff + 7, 0xfffff + 8, 0xfffff + 9, 0xfffff + 10, body.Length - 3, body.Length - 1, body.Length })
        {
            var scanner = default(ChunkedScanner);
            var first = scanner.Scan(bytes.AsSpan(0, split));
            Assert.Equal(split >= body.Length, scanner.Done);
            var second = scanner.Scan(bytes.AsSpan(split));
            Assert.Equal(body.Length, first + second);
            Assert.True(scanner.Done, $"split at {split}");
        }
        var pieces = default(ChunkedScanner);
        var total = 0;
        for (var at = 0; at < bytes.Length; at += 4093)
        {
            total += pieces.Scan(bytes.AsSpan(at, Math.Min(4093, bytes.Length - at)));
        }
        Assert.True(pieces.Done);
        Assert.Equal(body.Length, total);
    }

    [Fact]
    public void Chunked_Incomplete_IsNeitherDoneNorInvalid()
    {
        foreach (var part in new[] { "5", "5\r", "5\r\nhel", "5\r\nhello", "5\r\nhello\r\n", "5\r\nhello\r\n0\r\n", "5\r\nhello\r\n0\r\nX: 1\r\n", "fffffffffffffff\r\n" })
        {
            var scanner = default(ChunkedScanner);
            Assert.Equal(part.Length, scanner.Scan(B(part)));
            Assert.False(scanner.Done, part);
            Assert.False(scanner.Invalid, part);
        }
    }

    [Theory]
    [InlineData("5\r\nhelloX\r\n0\r\n\r\n")] // no CRLF after the data
    [InlineData("5\r\nhello\r0\r\n\r\n")]
    [InlineData("5\r\nhello0\r\n\r\n")]
    [InlineData("5\r\nhello world\r\n0\r\n\r\n")] // more data than the size says
    [InlineData("g\r\nhello\r\n0\r\n\r\n")] // not hex
    [InlineData("5x\r\nhello\r\n0\r\n\r\n")]
    [InlineData("0x5\r\nhello\r\n0\r\n\r\n")]
    [InlineData("-5\r\nhello\r\n0\r\n\r\n")]
    [InlineData("+5\r\nhello\r\n0\r\n\r\n")]
    [InlineData(" 5\r\nhello\r\n0\r\n\r\n")]
    [InlineData(";ext\r\nhello\r\n0\r\n\r\n")] // no size at all
    [InlineData("\r\nhello\r\n0\r\n\r\n")]
    [InlineData("5\nhello\r\n0\r\n\r\n")] // LF-only size line
    [InlineData("5;ext\nhello\r\n0\r\n\r\n")]
    [InlineData("5\rXhello\r\n0\r\n\r\n")]
    [InlineData("5\r\nhello\n0\r\n\r\n")] // LF-only after data
    [InlineData("5\r\nhello\r\n0\n\r\n")]
    [InlineData("5\r\nhello\r\n0\r\n\n")] // LF-only last line
    [InlineData("5\r\nhello\r\n0\r\nX: 1\n\r\n")] // LF-only trailer line
    [InlineData("5\r\nhello\r\n0\r\nX: 1\rY\r\n\r\n")]
    [InlineData("5\r\nhello\r\n0\r\n\rX")]
    [InlineData("1000000000000000\r\n")] // 16 hex digits
    [InlineData("0000000000000005\r\nhello\r\n0\r\n\r\n")] // 16 digits even with leading zeros
    [InlineData("ffffffffffffffff\r\n")]
    public void Chunked_Invalid(string body)
    {
        var bytes = B(body);
        var scanner = default(ChunkedScanner);
        scanner.Scan(bytes);
        Assert.True(scanner.Invalid);
        Assert.False(scanner.Done);

        var oneByOne = default(ChunkedScanner);
        for (var i = 0; i < bytes.Length && !oneByOne.Invalid; i++)
        {
            oneByOne.Scan(bytes.AsSpan(i, 1));
            Assert.False(oneByOne.Done);
        }
        Assert.True(oneByOne.Invalid);
        Assert.Equal(0, oneByOne.Scan(B("0\r\n\r\n"))); // stays invalid and takes nothing more
        Assert.True(oneByOne.Invalid);
    }

    // ---- RequestHead.Rewrite ----

    [Fact]
    public void Request_SimpleGet_ExactOutput()
    {
        const string head = "GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
        var (r, output) = Rewrite(head, remote: "192.0.2.7", port: "8080");
        Assert.Equal(head.Length - 2 + "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 8080\r\n".Length + "X-Amzn-Trace-Id: \r\n".Length + 40 + 2, r.Length);
        Assert.Equal(r.Length, output.Length);
        var trace = TraceLine().Match(output);
        Assert.True(trace.Success, output);
        Assert.Equal("X-Amzn-Trace-Id: Root=1-5f5e1000-", trace.Value[..33]); // the epoch seconds of Now
        Assert.Equal(
            "GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n"
            + "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 8080\r\n" + trace.Value + "\r\n",
            output);
        Assert.Equal(0, r.ContentLength);
        Assert.False(r.ClientClose);
        Assert.False(r.IsHead);
        var bytes = B(head);
        Assert.Equal("GET", S(bytes.AsSpan(0, r.MethodLength)));
        Assert.Equal("/a/b?x=1&y=%20", S(bytes.AsSpan(r.TargetStart, r.TargetLength)));
        Assert.Equal("example.com", S(bytes.AsSpan(r.HostStart, r.HostLength)));
    }

    [Fact]
    public void Request_TraceIds_Differ()
    {
        const string head = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        var first = TraceLine().Match(Rewrite(head).Output).Value;
        var second = TraceLine().Match(Rewrite(head).Output).Value;
        Assert.NotEqual("", first);
        Assert.NotEqual(first, second);
    }

    [Fact]
    public void Request_OrdinaryHeaders_CopiedVerbatimInOrder()
    {
        const string headers = "x-CUSTOM-header:   Value  With  Spaces  \r\nACCEPT:text/html\r\nHost: Example.COM:8080\r\nuser-agent: UA\t\r\nCookie: a=1; b=2\r\nCookie: c=3\r\nContent-Type: application/json\r\ncontent-length: 2\r\n";
        var (r, output) = Rewrite("POST /submit HTTP/1.1\r\n" + headers + "\r\n");
        Assert.StartsWith("POST /submit HTTP/1.1\r\n" + headers + Trailer(), output, StringComparison.Ordinal);
        Assert.Equal(2, r.ContentLength);
        Assert.Equal("Example.COM:8080", S(B("POST /submit HTTP/1.1\r\n" + headers).AsSpan(r.HostStart, r.HostLength)));
    }

    [Fact]
    public void Request_EightKibHeaderValue_Passes()
    {
        var big = new string('v', 8192);
        var (r, output) = Rewrite($"GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\nX-After: 1\r\n\r\n");
        Assert.NotEqual(-1, r.Length);
        Assert.StartsWith($"GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\nX-After: 1\r\n{Trailer()}", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "10.0.0.9")]
    [InlineData("X-Forwarded-For: 203.0.113.5\r\n", "203.0.113.5, 10.0.0.9")]
    [InlineData("X-Forwarded-For: 203.0.113.5, 198.51.100.1\r\n", "203.0.113.5, 198.51.100.1, 10.0.0.9")]
    [InlineData("x-forwarded-for:   203.0.113.5  \r\n", "203.0.113.5, 10.0.0.9")]
    [InlineData("X-Forwarded-For: \r\n", "10.0.0.9")]
    public void Request_XForwardedFor_AppendsTheClient(string clientHeader, string expected)
    {
        var (_, output) = Rewrite("GET / HTTP/1.1\r\nHost: a\r\n" + clientHeader + "Accept: x\r\n\r\n");
        Assert.StartsWith($"GET / HTTP/1.1\r\nHost: a\r\nAccept: x\r\nX-Forwarded-For: {expected}\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 80\r\n", output, StringComparison.Ordinal);
        Assert.Single(Regex.Matches(output, "x-forwarded-for", RegexOptions.IgnoreCase));
    }

    [Fact]
    public void Request_XForwardedFor_Ipv6Client()
    {
        var (_, output) = Rewrite("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.5\r\n\r\n", remote: "2001:db8::1");
        Assert.Contains("\r\nX-Forwarded-For: 203.0.113.5, 2001:db8::1\r\n", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Request_ClientForwardedProtoAndPort_Replaced()
    {
        var (_, output) = Rewrite("GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\nHost: a\r\nx-forwarded-port: 443\r\nX-FORWARDED-PROTO: gopher\r\n\r\n");
        Assert.StartsWith("GET / HTTP/1.1\r\nHost: a\r\n" + Trailer(), output, StringComparison.Ordinal);
        Assert.Single(Regex.Matches(output, "x-forwarded-proto", RegexOptions.IgnoreCase));
        Assert.Single(Regex.Matches(output, "x-forwarded-port", RegexOptions.IgnoreCase));
        Assert.DoesNotContain("https", output, StringComparison.Ordinal);
        Assert.DoesNotContain("443", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("X-Amzn-Trace-Id: Root=1-67891233-abcdef012345678912345678\r\n")]
    [InlineData("X-Amzn-Trace-Id: Self=1-67891233-12456789abcdef012345678;Root=1-67891233-abcdef012345678912345678;CalledFrom=app\r\n")]
    [InlineData("x-amzn-trace-id:Root=anything at all\r\n")]
    public void Request_TraceIdWithRoot_KeptVerbatim(string line)
    {
        var (_, output) = Rewrite("GET / HTTP/1.1\r\nHost: a\r\n" + line + "\r\n");
        Assert.Equal("GET / HTTP/1.1\r\nHost: a\r\n" + line + Trailer() + "\r\n", output);
    }

    [Theory]
    [InlineData("X-Amzn-Trace-Id: Self=1-67891233-abcdef012345678912345678\r\n")]
    [InlineData("X-Amzn-Trace-Id: \r\n")]
    [InlineData("X-Amzn-Trace-Id: root=1-67891233-abcdef012345678912345678\r\n")]
    public void Request_TraceIdWithoutRoot_Replaced(string line)
    {
        var (_, output) = Rewrite("GET / HTTP/1.1\r\nHost: a\r\n" + line + "\r\n");
        Assert.DoesNotContain(line, output, StringComparison.Ordinal);
        Assert.Single(Regex.Matches(output, "x-amzn-trace-id", RegexOptions.IgnoreCase));
        Assert.Matches(TraceLine(), output);
    }

    [Theory]
    [InlineData("Connection: keep-alive\r\n", false)]
    [InlineData("Connection: Keep-Alive\r\n", false)]
    [InlineData("Connection: close\r\n", true)]
    [InlineData("connection: CLOSE\r\n", true)]
    [InlineData("Connection: keep-alive, close\r\n", true)]
    [InlineData("Connection: close,\r\n", true)]
    [InlineData("Connection:\r\n", false)]
    [InlineData("Keep-Alive: timeout=5, max=100\r\n", false)]
    [InlineData("Proxy-Connection: keep-alive\r\n", false)]
    [InlineData("TE: trailers\r\n", false)]
    [InlineData("te: trailers\r\n", false)]
    [InlineData("Trailer: X-Checksum\r\n", false)]
    public void Request_HopByHop_Dropped(string line, bool clientClose)
    {
        var (r, output) = Rewrite("GET / HTTP/1.1\r\nHost: a\r\n" + line + "Accept: x\r\n\r\n");
        Assert.StartsWith("GET / HTTP/1.1\r\nHost: a\r\nAccept: x\r\n" + Trailer(), output, StringComparison.Ordinal);
        Assert.Equal(clientClose, r.ClientClose);
    }

    [Theory]
    [InlineData("GET", true)]
    [InlineData("HEAD", true)]
    [InlineData("PUT", true)]
    [InlineData("DELETE", true)]
    [InlineData("OPTIONS", true)]
    [InlineData("POST", false)]
    [InlineData("PATCH", false)]
    [InlineData("GETX", false)]
    public void Request_Idempotent_ByMethod(string method, bool idempotent)
    {
        var (r, _) = Rewrite(method + " / HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.True(r.Length > 0);
        Assert.Equal(idempotent, r.Idempotent);
    }

    [Theory]
    [InlineData("X-Hop: 1\r\nConnection: keep-alive, X-Hop\r\nx-hop: 2\r\n")]
    [InlineData("Connection: x-hop\r\nX-Hop: 1\r\n")]
    [InlineData("Connection: close , X-HOP ,X-Other\r\nX-Hop: 1\r\nX-Other: 3\r\n")]
    public void Request_HeadersNamedInConnection_Dropped(string lines)
    {
        var (r, output) = Rewrite("GET / HTTP/1.1\r\nHost: a\r\n" + lines + "X-Hops: kept\r\nAccept: x\r\n\r\n");
        Assert.True(r.Length > 0);
        Assert.StartsWith("GET / HTTP/1.1\r\nHost: a\r\nX-Hops: kept\r\nAccept: x\r\n" + Trailer(), output, StringComparison.Ordinal);
        Assert.Equal(lines.Contains("close", StringComparison.Ordinal), r.ClientClose);
    }

    [Theory]
    [InlineData("Content-Length: 0\r\n", 0L)]
    [InlineData("Content-Length: 42\r\n", 42L)]
    [InlineData("content-length:7\r\n", 7L)]
    [InlineData("Content-Length:   1234567890123  \r\n", 1234567890123L)]
    [InlineData("", 0L)]
    public void Request_ContentLength(string line, long expected)
    {
        var head = "POST / HTTP/1.1\r\nHost: a\r\n" + line + "\r\n";
        var (r, output) = Rewrite(head);
        Assert.Equal(expected, r.ContentLength);
        Assert.StartsWith(head[..^2], output, StringComparison.Ordinal); // the header itself goes to the target
    }

    [Theory]
    [InlineData("HEAD", true)]
    [InlineData("GET", false)]
    [InlineData("HEADER", false)]
    [InlineData("POST", false)]
    [InlineData("PROPFIND", false)]
    public void Request_IsHead(string method, bool expected)
    {
        var (r, output) = Rewrite($"{method} / HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.Equal(expected, r.IsHead);
        Assert.Equal(method.Length, r.MethodLength);
        Assert.StartsWith($"{method} / HTTP/1.1\r\n", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/")]
    [InlineData("/a/b/c.html")]
    [InlineData("/a?x=%41&y=a+b&z=/../")]
    [InlineData("/a?")]
    [InlineData("/a.b/c..d/e.")]
    [InlineData("/a:b@c!$&'()*+,;=~-_")]
    public void Request_PlainTargets_Accepted(string target)
    {
        var (r, _) = Rewrite($"GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.NotEqual(-1, r.Length);
        Assert.Equal(target, S(B($"GET {target} HTTP/1.1").AsSpan(r.TargetStart, r.TargetLength)));
        // The path rules see is the one Kestrel's input would give for the same (escape-free) target.
        var q = target.IndexOf('?', StringComparison.Ordinal);
        var path = q < 0 ? target : target[..q];
        Assert.Equal(new HttpRuleInput(Kestrel("GET", path, "a", []), null).Path, HeadInput($"GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").Path);
    }

    [Theory]
    [InlineData("GET / HTTP/1.0\r\nHost: a\r\n\r\n")]
    [InlineData("GET / HTTP/1.2\r\nHost: a\r\n\r\n")]
    [InlineData("GET / http/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET / HTTP/1.1 \r\nHost: a\r\n\r\n")]
    [InlineData("GET /\r\nHost: a\r\n\r\n")]
    [InlineData("PRI * HTTP/2.0\r\n\r\n")]
    [InlineData("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n")]
    [InlineData("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET /a%20b HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET /%2e%2e/x HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET /a/./b HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET /a/../b HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET /a/.. HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET /.. HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET /a//b HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET // HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET  / HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET /caf\u00e9 HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET /a\u007f HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("get / HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("Get / HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("G3T / HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("M-SEARCH / HTTP/1.1\r\nHost: a\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\n\r\n")] // no Host
    [InlineData("GET / HTTP/1.1\r\nAccept: x\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: \r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a b\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: identity\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")]
    [InlineData("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nConnection: a, b, c, d, e, f, g, h, i\r\n\r\n")] // more options than it keeps track of
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost : a\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n")] // obs-fold
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\n Host: a\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\u0001c\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\u0000c\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\u007fc\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n")] // bare CR
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\nc\r\n\r\n")] // bare LF
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-A b\r\n\r\n")] // no colon
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n")] // no name
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n")]
    public void Request_Refused(string head) => Assert.Equal(-1, Rewrite(head).Head.Length);

    // ---- ResponseHead.Parse ----

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", 200, 12L, false, false, false)]
    [InlineData("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\ncontent-length:0\r\n\r\n", 404, 0L, false, false, false)]
    [InlineData("HTTP/1.1 204\r\n\r\n", 204, -1L, false, false, false)]
    [InlineData("HTTP/1.1 100 Continue\r\n\r\n", 100, -1L, false, false, false)]
    [InlineData("HTTP/1.1 599 Whatever It Says\r\n\r\n", 599, -1L, false, false, false)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 200, 5L, false, false, false)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 200, -1L, true, false, false)]
    [InlineData("HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n", 200, -1L, true, false, false)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 200, -1L, true, false, false)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,chunked \r\n\r\n", 200, -1L, true, false, false)]
    // Transfer-Encoding overrides Content-Length, which must not reach the client beside it (RFC 9112 6.3): a rewrite.
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 200, -1L, true, false, true)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 200, -1L, true, false, true)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n", 200, -1L, false, true, true)]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n", 200, -1L, false, true, true)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 200, -1L, false, true, true)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 200, -1L, false, true, true)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 200, -1L, true, true, true)]
    [InlineData("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 200, -1L, false, true, true)]
    [InlineData("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", 200, 1L, false, true, true)]
    [InlineData("HTTP/1.1 200 OK\r\nconnection: Keep-Alive, CLOSE\r\n\r\n", 200, -1L, false, true, true)]
    [InlineData("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", 200, 1L, false, false, true)]
    [InlineData("HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 1\r\n\r\n", 200, 1L, false, false, true)]
    [InlineData("HTTP/1.1 200 OK\r\nProxy-Connection: keep-alive\r\nContent-Length: 1\r\n\r\n", 200, 1L, false, false, true)]
    [InlineData("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", 200, 1L, false, true, true)]
    [InlineData("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", 200, 1L, false, false, true)]
    [InlineData("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\n", 200, 1L, false, false, true)]
    [InlineData("HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n", 200, -1L, false, true, true)]
    public void Response_Parse(string head, int status, long contentLength, bool chunked, bool targetCloses, bool hopByHop)
    {
        var r = ResponseHead.Parse(B(head));
        Assert.True(r.Valid);
        Assert.Equal(status, r.Status);
        Assert.Equal(head.Length, r.Length);
        Assert.Equal(contentLength, r.ContentLength);
        Assert.Equal(chunked, r.Chunked);
        Assert.Equal(targetCloses, r.TargetCloses);
        Assert.Equal(hopByHop, r.HasHopByHop);
    }

    [Theory]
    [InlineData("HTTP/2 200 OK\r\n\r\n")]
    [InlineData("HTTP/2.0 200 OK\r\n\r\n")]
    [InlineData("HTTP/1.2 200 OK\r\n\r\n")]
    [InlineData("HTTP/1.1 20 OK\r\n\r\n")]
    [InlineData("HTTP/1.1 2000 OK\r\n\r\n")]
    [InlineData("HTTP/1.1 20x OK\r\n\r\n")]
    [InlineData("HTTP/1.1  200 OK\r\n\r\n")]
    [InlineData("HTTP/1.1 200OK\r\n\r\n")]
    [InlineData("http/1.1 200 OK\r\n\r\n")]
    [InlineData("HTTP/1.1\r\n\r\n")]
    [InlineData("ICY 200 OK\r\n\r\n")]
    [InlineData("garbage\r\n\r\n")]
    [InlineData("\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A: b\r\n folded\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nno colon\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nX-A: b\u0000\r\n\r\n")]
    public void Response_Invalid(string head) => Assert.False(ResponseHead.Parse(B(head)).Valid);

    // ---- ResponseHead.Rewrite ----

    [Theory]
    [InlineData(
        "HTTP/1.1 200 OK\r\nServer: x\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\n", false,
        "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 3\r\n\r\n")]
    [InlineData(
        "HTTP/1.0 200 OK\r\nServer: x\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 3\r\n\r\n", false,
        "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 3\r\n\r\n")]
    [InlineData(
        "HTTP/1.0 404 Not Found\r\nDate: d\r\n\r\n", true,
        "HTTP/1.1 404 Not Found\r\nDate: d\r\nConnection: close\r\n\r\n")]
    [InlineData(
        "HTTP/1.1 200 OK\r\nCONNECTION: close\r\nx-Weird:  spaced  value \r\nproxy-connection: close\r\nkeep-alive: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n", true,
        "HTTP/1.1 200 OK\r\nx-Weird:  spaced  value \r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nConnection: close\r\n\r\n")]
    [InlineData(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Type: a/b\r\n\r\n", true,
        "HTTP/1.1 200 OK\r\nContent-Type: a/b\r\nConnection: close\r\n\r\n")]
    [InlineData(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: keep-alive\r\n\r\n", false,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")]
    [InlineData(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n", false,
        "HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n")]
    [InlineData(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\ncontent-length: 5\r\nX-A: 1\r\n\r\n", true,
        "HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: close\r\n\r\n")]
    [InlineData( // the codings are the lines' lists joined: the last one says chunked, so every line goes on
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n", false,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n")]
    [InlineData( // not chunked at the end: close-delimited, and no line of it goes on
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nTransfer-Encoding: gzip\r\n\r\n", true,
        "HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: close\r\n\r\n")]
    [InlineData(
        "HTTP/1.1 204\r\nConnection: keep-alive\r\n\r\n", false,
        "HTTP/1.1 204\r\n\r\n")]
    [InlineData(
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false,
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")]
    public void Response_Rewrite(string head, bool close, string expected)
    {
        var output = new byte[head.Length + 64];
        var w = ResponseHead.Rewrite(B(head), output, close);
        Assert.Equal(expected, S(output.AsSpan(0, w)));
    }

    // ---- HeadRuleInput ----

    private static HeadRuleInput HeadInput(string head, string remote = "10.1.2.3")
    {
        var bytes = B(head);
        var r = RequestHead.Rewrite(bytes, new byte[bytes.Length + 512], B(remote), "80"u8, Now);
        Assert.NotEqual(-1, r.Length);
        // The rule input reads the buffer the head arrived in, which may hold body bytes after it.
        var buffer = B(head + "BODY: not a header\r\n\r\n");
        return new HeadRuleInput(buffer, r, IPAddress.Parse(remote));
    }

    [Theory]
    [InlineData("GET", "/a/b?x=1", "/a/b")]
    [InlineData("POST", "/", "/")]
    [InlineData("DELETE", "/?x=1", "/")]
    [InlineData("PUT", "/a/b.c?", "/a/b.c")]
    [InlineData("OPTIONS", "/a?b?c", "/a")]
    public void HeadInput_MethodAndPath(string method, string target, string path)
    {
        var input = HeadInput($"{method} {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.Equal(method, input.Method);
        Assert.Equal(path, input.Path);
    }

    [Theory]
    [InlineData("example.com", "example.com")]
    [InlineData("Example.COM:8080", "Example.COM")]
    [InlineData("10.0.0.1:80", "10.0.0.1")]
    [InlineData("[::1]:8080", "[::1]")]
    [InlineData("[::1]", "[::1]")]
    [InlineData("[2001:db8::1]:443", "[2001:db8::1]")]
    public void HeadInput_Host_WithoutPort(string host, string expected)
    {
        var input = HeadInput($"GET / HTTP/1.1\r\nHost:   {host}  \r\n\r\n");
        Assert.Equal(expected, input.Host);
        Assert.Equal(new HttpRuleInput(Kestrel("GET", "/", host, []), null).Host, input.Host);
    }

    [Fact]
    public void HeadInput_Header_CaseInsensitiveNameAllLines()
    {
        var input = HeadInput("GET / HTTP/1.1\r\nX-Multi: a\r\nHost: h\r\nx-multi:   b c  \r\nX-Multiple: no\r\nX-MULTI:\r\n\r\n");
        Assert.Equal(["a", "b c", ""], input.Header("x-multi"));
        Assert.Equal(["a", "b c", ""], input.Header("X-MULTI"));
        Assert.Equal(["no"], input.Header("X-Multiple"));
        Assert.Equal(["h"], input.Header("host"));
        Assert.Empty(input.Header("X-Mult"));
        Assert.Empty(input.Header("BODY"));
        Assert.Equal(IPAddress.Parse("10.1.2.3"), input.Remote);
    }

    [Theory]
    [InlineData("/", new string[0])]
    [InlineData("/?", new string[0])]
    [InlineData("/?a=1", new[] { "a=1" })]
    [InlineData("/?a=1&b=x%20y&c=p+q&d&&e=%2B&f=", new[] { "a=1", "b=x y", "c=p q", "d=", "e=+", "f=" })]
    [InlineData("/?a=1&a=2", new[] { "a=1", "a=2" })]
    [InlineData("/?k%3D=v%26w&x+y=%41%42", new[] { "k==v&w", "x y=AB" })]
    [InlineData("/?u=%C3%A9", new[] { "u=\u00e9" })]
    [InlineData("/?u=%FF&v=%zz&w=%", new[] { "u=%FF", "v=%zz", "w=%" })]
    public void HeadInput_Query_Decoded(string target, string[] expected)
    {
        var input = HeadInput($"GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        Assert.Equal(expected, input.Query().Select(q => $"{q.Key}={q.Value}"));
        var q = target.IndexOf('?', StringComparison.Ordinal);
        var kestrel = new HttpRuleInput(Kestrel("GET", "/", "a", [], q < 0 ? "" : target[q..]), null);
        Assert.Equal(expected.Order(StringComparer.Ordinal), kestrel.Query().Select(p => $"{p.Key}={p.Value}").Order(StringComparer.Ordinal));
    }

    private static HttpRequest Kestrel(string method, string path, string host, (string Name, string Value)[] headers, string query = "")
    {
        var ctx = new DefaultHttpContext();
        ctx.Request.Method = method;
        ctx.Request.Path = path;
        ctx.Request.QueryString = new QueryString(query);
        ctx.Request.Host = new HostString(host);
        foreach (var (name, value) in headers)
        {
            ctx.Request.Headers.Append(name, value);
        }
        return ctx.Request;
    }

    private sealed record Req(string Method, string Path, string Query, string Host, (string Name, string Value)[] Headers, string Remote);

    private static readonly Req[] Requests =
    [
        new("GET", "/api/users", "?version=v2", "api.example.com:8080", [("User-Agent", "Some Mobile Browser")], "10.1.2.3"),
        new("POST", "/img/a.png", "", "EXAMPLE.COM", [("User-Agent", "desktop")], "192.168.1.1"),
        new("GET", "/", "?x=1", "www.example.com", [], "::ffff:10.0.0.1"),
        new("PUT", "/API/x", "?Version=V2", "[::1]:8080", [("user-agent", "desktop"), ("USER-AGENT", "MOBILE app")], "::1"),
    ];

    public static readonly TheoryData<string, RuleCondition[]> Conditions = new()
    {
        { "path", [new RuleCondition { Field = "path-pattern", Values = ["/api/*"] }] },
        { "path?", [new RuleCondition { Field = "path-pattern", PathPatternConfig = new PathPatternConditionConfig { Values = ["/img/?.png", "/nothing"] } }] },
        { "host", [new RuleCondition { Field = "host-header", HostHeaderConfig = new HostHeaderConditionConfig { Values = ["*.example.com"] } }] },
        { "header", [new RuleCondition { Field = "http-header", HttpHeaderConfig = new HttpHeaderConditionConfig { HttpHeaderName = "User-Agent", Values = ["*mobile*"] } }] },
        { "method", [new RuleCondition { Field = "http-request-method", HttpRequestMethodConfig = new HttpRequestMethodConditionConfig { Values = ["POST", "PATCH"] } }] },
        { "source", [new RuleCondition { Field = "source-ip", SourceIpConfig = new SourceIpConditionConfig { Values = ["10.0.0.0/8"] } }] },
        { "source6", [new RuleCondition { Field = "source-ip", SourceIpConfig = new SourceIpConditionConfig { Values = ["::1/128", "192.168.0.0/16"] } }] },
        { "query", [new RuleCondition { Field = "query-string", QueryStringConfig = new QueryStringConditionConfig { Values = [new QueryStringKeyValuePair { Key = "version", Value = "v2" }] } }] },
        {
            "path+host", [
                new RuleCondition { Field = "path-pattern", Values = ["/api/*"] },
                new RuleCondition { Field = "host-header", Values = ["api.*"] },
            ]
        },
    };

    [Theory]
    [MemberData(nameof(Conditions))]
    public void HeadInput_SameVerdictsAsKestrelInput(string label, RuleCondition[] conditions)
    {
        var match = RuleMatcher.Compile(conditions);
        var verdicts = new List<bool>();
        foreach (var r in Requests)
        {
            var head = $"{r.Method} {r.Path}{r.Query} HTTP/1.1\r\nHost: {r.Host}\r\n" + string.Concat(r.Headers.Select(h => $"{h.Name}: {h.Value}\r\n")) + "\r\n";
            var fast = match(HeadInput(head, r.Remote));
            var kestrel = match(new HttpRuleInput(Kestrel(r.Method, r.Path, r.Host, r.Headers, r.Query), IPAddress.Parse(r.Remote)));
            Assert.True(kestrel == fast, $"{label}: {r.Method} {r.Path}{r.Query} host {r.Host} from {r.Remote}: Kestrel {kestrel}, fast path {fast}");
            verdicts.Add(fast);
        }
        // Each condition holds for some requests of the table and not for others, so the comparison means something.
        Assert.Contains(true, verdicts);
        Assert.Contains(false, verdicts);
    }

    // ---- HandOverPreamble ----

    [Theory]
    [InlineData("BERTH 10.1.2.3 54321 80", "10.1.2.3", 54321, 80)]
    [InlineData("BERTH 127.0.0.1 1 65535", "127.0.0.1", 1, 65535)]
    [InlineData("BERTH ::1 40000 8080", "::1", 40000, 8080)]
    [InlineData("BERTH 2001:db8::5 65535 443", "2001:db8::5", 65535, 443)]
    [InlineData("BERTH ::ffff:10.0.0.1 0 1", "::ffff:10.0.0.1", 0, 1)]
    public void Preamble_Good(string line, string ip, int port, int localPort)
    {
        Assert.True(HandOverPreamble.TryParse(line, out var remote, out var local));
        Assert.Equal(new IPEndPoint(IPAddress.Parse(ip), port), remote);
        Assert.Equal(localPort, local);
    }

    [Theory]
    [InlineData("")]
    [InlineData("BERTH")]
    [InlineData("BERTH 10.1.2.3 54321")]
    [InlineData("BERTH 10.1.2.3 54321 80 extra")]
    [InlineData("berth 10.1.2.3 54321 80")]
    [InlineData("PROXY 10.1.2.3 54321 80")]
    [InlineData("BERTH  10.1.2.3 54321 80")]
    [InlineData("BERTH 10.1.2.3 54321 80 ")]
    [InlineData("BERTH 10.1.2.3 54321 80\r")]
    [InlineData("BERTH not-an-ip 54321 80")]
    [InlineData("BERTH 10.1.2.300 54321 80")]
    [InlineData("BERTH 10.1.2.3 -1 80")]
    [InlineData("BERTH 10.1.2.3 +1 80")]
    [InlineData("BERTH 10.1.2.3 1 eighty")]
    [InlineData("BERTH 10.1.2.3 1 0x50")]
    [InlineData("BERTH 10.1.2.3 99999999999 80")]
    [InlineData("BERTH 10.1.2.3 65536 80")]
    [InlineData("BERTH 10.1.2.3 1 65536")]
    public void Preamble_Bad(string line) => Assert.False(HandOverPreamble.TryParse(line, out _, out _));
}
