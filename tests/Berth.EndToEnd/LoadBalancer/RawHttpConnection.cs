using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Berth.EndToEnd.LoadBalancer;

/// <summary>One HTTP/1.1 response as read off the wire: status, headers (names case-insensitive), body text.</summary>
public sealed record RawResponse(int Status, IReadOnlyDictionary<string, string> Headers, string Body);

/// <summary>
/// A client connection written by hand, for what curl and HttpClient hide: several requests on one connection,
/// pipelining, HEAD followed by another request, odd request targets. Every read is bounded by a timeout.
/// </summary>
public sealed class RawHttpConnection : IDisposable
{
    private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(15);
    private readonly TcpClient _client;
    private readonly NetworkStream _stream;
    private readonly byte[] _buffer = new byte[65536];
    private int _start;
    private int _end;

    private RawHttpConnection(TcpClient client)
    {
        _client = client;
        _stream = client.GetStream();
    }

    public static async Task<RawHttpConnection> OpenAsync(int port)
    {
        var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync(IPAddress.Loopback, port);
        return new RawHttpConnection(client);
    }

    /// <summary>Writes <paramref name="text"/> (ASCII) in one send.</summary>
    public async Task SendAsync(string text) => await _stream.WriteAsync(Encoding.ASCII.GetBytes(text));

    /// <summary>A GET (or other bodiless method) request head for <paramref name="target"/>.</summary>
    public static string Request(string method, string target, int port, string extraHeaders = "")
        => $"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extraHeaders}\r\n";

    /// <summary>The next response; fails if the connection closes before a whole one arrives.</summary>
    public async Task<RawResponse> ReadResponseAsync(bool head = false)
        => await TryReadResponseAsync(head) ?? throw new IOException("the connection closed before a response arrived");

    /// <summary>The next response, or null if the connection closes (or resets) before its first byte.</summary>
    public async Task<RawResponse?> TryReadResponseAsync(bool head = false)
    {
        using var cts = new CancellationTokenSource(ReadTimeout);
        var ct = cts.Token;
        string? statusLine;
        try
        {
            statusLine = await ReadLineAsync(ct);
        }
        catch (IOException)
        {
            return null; // reset before any byte
        }
        if (statusLine is null)
        {
            return null;
        }
        var parts = statusLine.Split(' ', 3);
        if (parts.Length < 2 || !parts[0].StartsWith("HTTP/1.", StringComparison.Ordinal))
        {
            throw new InvalidDataException($"not a status line: '{statusLine}'");
        }
        var status = int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        while (await ReadLineAsync(ct) is { Length: > 0 } line)
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var name = line[..colon].Trim();
            var value = line[(colon + 1)..].Trim();
            headers[name] = headers.TryGetValue(name, out var prior) ? prior + ", " + value : value;
        }
        if (status is >= 100 and < 200)
        {
            return await TryReadResponseAsync(head); // an interim response: the real one follows
        }
        var body = new MemoryStream();
        if (head || status is 204 or 304)
        {
            // no body
        }
        else if (headers.TryGetValue("Transfer-Encoding", out var te) && te.Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            while (true)
            {
                var sizeLine = await ReadLineAsync(ct) ?? throw new IOException("closed inside a chunked body");
                var size = Convert.ToInt32(sizeLine.Split(';')[0].Trim(), 16);
                if (size == 0)
                {
                    while (await ReadLineAsync(ct) is { Length: > 0 })
                    {
                        // trailers
                    }
                    break;
                }
                await ReadExactAsync(body, size, ct);
                if (await ReadLineAsync(ct) is not "")
                {
                    throw new InvalidDataException("a chunk is not followed by CRLF");
                }
            }
        }
        else if (headers.TryGetValue("Content-Length", out var cl))
        {
            await ReadExactAsync(body, int.Parse(cl, System.Globalization.CultureInfo.InvariantCulture), ct);
        }
        else
        {
            while (await FillAsync(ct))
            {
                body.Write(_buffer, _start, _end - _start);
                _start = _end;
            }
        }
        return new RawResponse(status, headers, Encoding.ASCII.GetString(body.ToArray()));
    }

    /// <summary>True when the peer closes the connection (EOF or reset) within <paramref name="timeout"/>, with nothing more sent.</summary>
    public async Task<bool> ClosesWithinAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            return _start == _end && !await FillAsync(cts.Token);
        }
        catch (IOException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private async Task<bool> FillAsync(CancellationToken ct)
    {
        if (_start == _end)
        {
            _start = _end = 0;
        }
        else if (_end == _buffer.Length)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        var n = await _stream.ReadAsync(_buffer.AsMemory(_end), ct);
        _end += n;
        return n > 0;
    }

    private async Task<string?> ReadLineAsync(CancellationToken ct)
    {
        var line = new StringBuilder();
        while (true)
        {
            for (var i = _start; i < _end; i++)
            {
                if (_buffer[i] == '\n')
                {
                    line.Append(Encoding.ASCII.GetString(_buffer, _start, i - _start));
                    _start = i + 1;
                    return line.ToString().TrimEnd('\r');
                }
            }
            line.Append(Encoding.ASCII.GetString(_buffer, _start, _end - _start));
            _start = _end;
            if (!await FillAsync(ct))
            {
                return line.Length == 0 ? null : throw new IOException("closed inside a line");
            }
        }
    }

    private async Task ReadExactAsync(MemoryStream into, int count, CancellationToken ct)
    {
        while (count > 0)
        {
            if (_start == _end && !await FillAsync(ct))
            {
                throw new IOException($"closed with {count} body bytes missing");
            }
            var n = Math.Min(count, _end - _start);
            into.Write(_buffer, _start, n);
            _start += n;
            count -= n;
        }
    }

    public void Dispose()
    {
        _stream.Dispose();
        _client.Dispose();
    }
}
