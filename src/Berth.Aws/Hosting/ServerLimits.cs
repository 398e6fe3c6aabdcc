using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace Berth.Aws.Hosting;

/// <summary>The bounds every Berth listener applies to its clients (<c>berth server --max-connections-per-address</c> and friends).</summary>
public sealed record ServerLimits
{
    /// <summary>
    /// Open connections one client address may hold on one listener. Tests and benchmarks all come from
    /// 127.0.0.1 and open at most a few dozen at once; 512 leaves them room and still stops one host from
    /// taking every file descriptor the server has.
    /// </summary>
    public int MaxConnectionsPerAddress { get; init; } = 512;

    /// <summary>Open connections in all, over every listener of the server (Kestrel's MaxConcurrentConnections).</summary>
    public int MaxConnections { get; init; } = 10_000;

    /// <summary>The time a client has to send the whole request line and headers (slowloris).</summary>
    public TimeSpan RequestHeadersTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long an idle keep-alive connection stays open (ELB's default idle timeout is 60 s too).</summary>
    public TimeSpan KeepAliveTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>The slowest request body accepted after <see cref="BodyGracePeriod"/>: a slower sender is cut off with 408.</summary>
    public double MinBodyBytesPerSecond { get; init; } = 240;

    public TimeSpan BodyGracePeriod { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Request line (method, URL, version): 8 KiB; a presigned URL with a session token fits in 4.</summary>
    public int MaxRequestLineBytes { get; init; } = 8 * 1024;

    /// <summary>All request headers together (HTTP/1.1 and the decoded HTTP/2 header block).</summary>
    public int MaxRequestHeadersBytes { get; init; } = 32 * 1024;

    public int MaxRequestHeaderCount { get; init; } = 100;

    /// <summary>Applies the server-wide bounds to Kestrel.</summary>
    public void ApplyTo(KestrelServerOptions k)
    {
        var l = k.Limits;
        l.MaxConcurrentConnections = MaxConnections;
        l.MaxConcurrentUpgradedConnections = MaxConnections;
        l.RequestHeadersTimeout = RequestHeadersTimeout;
        l.KeepAliveTimeout = KeepAliveTimeout;
        l.MinRequestBodyDataRate = new MinDataRate(MinBodyBytesPerSecond, BodyGracePeriod);
        // A client that does not read its answers is cut off too, or it pins the response buffers.
        l.MinResponseDataRate = new MinDataRate(MinBodyBytesPerSecond, BodyGracePeriod);
        l.MaxRequestLineSize = MaxRequestLineBytes;
        l.MaxRequestHeadersTotalSize = MaxRequestHeadersBytes;
        l.MaxRequestHeaderCount = MaxRequestHeaderCount;
        // HTTP/2 (the agents' port): one header field at most half the block, streams as Kestrel's default.
        l.Http2.MaxRequestHeaderFieldSize = MaxRequestHeadersBytes / 2;
        l.Http2.MaxStreamsPerConnection = 100;
    }

    /// <summary>
    /// Puts the per-address connection cap in front of <paramref name="listen"/>. Call it before UseHttps so
    /// that a refused connection costs no TLS handshake.
    /// </summary>
    public void Guard(ListenOptions listen, ILoggerFactory loggers)
    {
        var cap = new ConnectionsPerAddress(MaxConnectionsPerAddress, loggers.CreateLogger<ConnectionsPerAddress>());
        listen.Use(cap.Middleware);
    }
}

/// <summary>
/// A Kestrel connection middleware that counts open connections per remote address and closes any over the cap
/// at once, before a byte of it is read: the connection costs Kestrel's accept and nothing more.
/// </summary>
internal sealed partial class ConnectionsPerAddress(int max, ILogger logger)
{
    private readonly Dictionary<IPAddress, int> _open = [];
    private readonly Lock _lock = new();
    private long _refused;
    private long _lastLog;

    public ConnectionDelegate Middleware(ConnectionDelegate next) => async connection =>
    {
        var address = Address(connection);
        if (address is null)
        {
            await next(connection).ConfigureAwait(false);
            return;
        }
        if (!TryEnter(address))
        {
            Refused(address);
            return; // returning without reading closes the socket
        }
        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            Leave(address);
        }
    };

    internal int OpenFrom(IPAddress address)
    {
        lock (_lock)
        {
            return _open.GetValueOrDefault(address);
        }
    }

    private static IPAddress? Address(ConnectionContext connection)
        => connection.RemoteEndPoint is IPEndPoint ip ? (ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4() : ip.Address) : null;

    private bool TryEnter(IPAddress address)
    {
        lock (_lock)
        {
            var n = _open.GetValueOrDefault(address);
            if (n >= max)
            {
                return false;
            }
            _open[address] = n + 1;
            return true;
        }
    }

    private void Leave(IPAddress address)
    {
        lock (_lock)
        {
            var n = _open.GetValueOrDefault(address) - 1;
            if (n <= 0)
            {
                _open.Remove(address);
            }
            else
            {
                _open[address] = n;
            }
        }
    }

    private void Refused(IPAddress address)
    {
        var total = Interlocked.Increment(ref _refused);
        // One line per 10 s at most, however hard the flood: the log must not become the next thing to fill up.
        var now = Environment.TickCount64;
        var last = Volatile.Read(ref _lastLog);
        if (now - last >= 10_000 && Interlocked.CompareExchange(ref _lastLog, now, last) == last)
        {
            LogRefused(logger, address, max, total);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Closed a connection from {Address}: it already holds {Max} open connections (--max-connections-per-address); {Total} refused since start")]
    private static partial void LogRefused(ILogger logger, IPAddress address, int max, long total);
}
