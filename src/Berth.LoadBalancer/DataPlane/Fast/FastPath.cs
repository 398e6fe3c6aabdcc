using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy;

namespace Berth.LoadBalancer.DataPlane.Fast;

/// <summary>
/// The listener ports' front: plain HTTP/1.1 requests forwarded on the data plane's own event loops (one per core),
/// everything else handed to the Kestrel + YARP data plane over a private Unix socket. It owns the loops, the listening
/// sockets (one per listener port, accepted on by every loop) and the socket path Kestrel listens on.
/// </summary>
internal sealed partial class FastPath : IDisposable
{
    private readonly Dictionary<int, ListenerSocket> _listeners = [];
    private readonly ILogger _logger;
    private readonly string _directory;

    public FastPath(RoutingState routing, Elbv2Regions regions, DataPlaneMetrics metrics, InFlightRequests inFlight,
        LoadBalancerOptions options, TimeProvider time, ILogger logger)
    {
        Routing = routing;
        Regions = regions;
        Metrics = metrics;
        InFlight = inFlight;
        Options = options;
        Time = time;
        _logger = logger;
        // The socket Kestrel serves the other requests on sits in a directory only this user may enter: what arrives
        // there is trusted to say which client and listener a connection came from.
        _directory = Path.Combine(Path.GetTempPath(), "berth-lb-" + Guid.NewGuid().ToString("N")[..12]);
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("The load balancer's fast path needs Linux (epoll).");
        }
        Directory.CreateDirectory(_directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        KestrelSocketPath = Path.Combine(_directory, "kestrel.sock");
        var path = Encoding.UTF8.GetBytes(KestrelSocketPath);
        KestrelAddress = new byte[2 + path.Length + 1];
        BitConverter.TryWriteBytes(KestrelAddress.AsSpan(0, 2), (ushort)Linux.AF_UNIX);
        path.CopyTo(KestrelAddress, 2);
        Loops = Enumerable.Range(0, Math.Clamp(Environment.ProcessorCount, 1, 16)).Select(i => new EventLoop(i)).ToArray();
        foreach (var loop in Loops)
        {
            loop.MaxClientConnections = Math.Max(1, options.MaxConnections / Loops.Length);
            loop.Start();
        }
    }

    /// <summary>The fast path is Linux's (epoll); BERTH_LB_FAST_PATH=0 turns it off (every request then goes through Kestrel).</summary>
    public static bool Supported => OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable("BERTH_LB_FAST_PATH") != "0";

    public RoutingState Routing { get; }
    public Elbv2Regions Regions { get; }
    public DataPlaneMetrics Metrics { get; }
    public InFlightRequests InFlight { get; }
    public LoadBalancerOptions Options { get; }
    public TimeProvider Time { get; }
    public EventLoop[] Loops { get; }
    public string KestrelSocketPath { get; }
    public byte[] KestrelAddress { get; }

    /// <summary>YARP's clusters and the group algorithms; set once the data plane's host has started.</summary>
    public IProxyStateLookup? Lookup { get; set; }
    public SlowStartRoundRobinPolicy? RoundRobin { get; set; }
    public LeastOutstandingRequestsPolicy? LeastOutstanding { get; set; }

    /// <summary>Opens the listener ports not open yet and closes the ones no listener has any more (reconcile thread).</summary>
    public void SetPorts(IReadOnlySet<int> ports, IPAddress bind)
    {
        foreach (var port in _listeners.Keys.Where(p => !ports.Contains(p)).ToList())
        {
            _listeners.Remove(port, out var gone);
            gone!.Close();
        }
        foreach (var port in ports.Where(p => !_listeners.ContainsKey(p)))
        {
            try
            {
                _listeners[port] = new ListenerSocket(this, bind, port);
            }
            catch (SocketException e)
            {
                LogBindFailed(_logger, port, e);
            }
        }
    }

    public void Dispose()
    {
        foreach (var l in _listeners.Values)
        {
            l.Close();
        }
        _listeners.Clear();
        foreach (var loop in Loops)
        {
            loop.Dispose();
        }
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>A connection ended by an unexpected error (a bug: the client's connection was closed).</summary>
    public void ConnectionFailed(Exception e) => LogConnectionFailed(_logger, e);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Load balancer connection closed after an unexpected error")]
    private static partial void LogConnectionFailed(ILogger logger, Exception e);

    [LoggerMessage(Level = LogLevel.Error, Message = "Load balancer listener port {Port} could not be opened")]
    private static partial void LogBindFailed(ILogger logger, int port, Exception e);
}

/// <summary>
/// One listener port: a listening socket every loop waits on (EPOLLEXCLUSIVE wakes one of them per connection); the loop
/// that accepts a connection serves it to the end.
/// </summary>
internal sealed unsafe class ListenerSocket
{
    private readonly Socket _socket;
    private readonly List<(EventLoop Loop, GCHandle Handle)> _registrations = [];
    private int _unregistered;

    public ListenerSocket(FastPath owner, IPAddress bind, int port)
    {
        Owner = owner;
        Port = port;
        PortText = Encoding.ASCII.GetBytes(port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        _socket = new Socket(bind.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            _socket.Bind(new IPEndPoint(bind, port));
            _socket.Listen(1024);
            _socket.Blocking = false;
        }
        catch
        {
            _socket.Dispose();
            throw;
        }
        var fd = (int)_socket.Handle;
        foreach (var loop in owner.Loops)
        {
            var handle = GCHandle.Alloc(new Acceptor(this, loop, fd));
            ((Acceptor)handle.Target!).Handle = handle;
            _registrations.Add((loop, handle));
            Linux.Control(loop.EpollFd, Linux.EPOLL_CTL_ADD, fd, Linux.EPOLLIN | Linux.EPOLLEXCLUSIVE, (ulong)GCHandle.ToIntPtr(handle));
        }
    }

    public FastPath Owner { get; }
    public int Port { get; }
    public byte[] PortText { get; }

    /// <summary>Set when the listener is deleted: its connections close at their next request.</summary>
    public volatile bool Closed;

    /// <summary>Each loop takes the socket out of its epoll on its own thread; the last one closes it.</summary>
    public void Close()
    {
        Closed = true;
        var fd = (int)_socket.Handle;
        foreach (var (loop, handle) in _registrations)
        {
            loop.Post(() =>
            {
                Linux.Control(loop.EpollFd, Linux.EPOLL_CTL_DEL, fd, 0, 0);
                handle.Free();
                if (Interlocked.Increment(ref _unregistered) == _registrations.Count)
                {
                    _socket.Dispose();
                }
            });
        }
    }

    private sealed class Acceptor(ListenerSocket listener, EventLoop loop, int fd) : IEventTarget, IPausable
    {
        private const int EMFILE = 24;
        private const int ENFILE = 23;
        private const int ENOBUFS = 105;
        private const int ENOMEM = 12;

        private bool _paused;

        public GCHandle Handle { get; set; }

        public void OnEvents(uint flags)
        {
            var address = stackalloc byte[128];
            for (var i = 0; i < 64 && !listener.Closed; i++)
            {
                if (loop.ClientConnections >= loop.MaxClientConnections)
                {
                    Pause();
                    return;
                }
                uint length = 128;
                var client = Linux.accept4(fd, address, &length, Linux.SOCK_NONBLOCK | Linux.SOCK_CLOEXEC);
                if (client < 0)
                {
                    // Out of descriptors or memory: the socket stays readable, so waiting on it would spin; stop a while.
                    if (Linux.Errno is EMFILE or ENFILE or ENOBUFS or ENOMEM)
                    {
                        Pause();
                    }
                    return; // EAGAIN: another loop took it
                }
                Linux.NoDelay(client);
                var (ip, port) = SocketAddresses.Parse(new ReadOnlySpan<byte>(address, (int)length));
                FdSocket socket;
                try
                {
                    socket = new FdSocket(loop, client) { IsClient = true };
                }
                catch (SocketException)
                {
                    Linux.close(client);
                    continue;
                }
                loop.ClientOpened();
                _ = new FastConnection(listener, loop, socket, ip, port).RunAsync();
            }
        }

        private void Pause()
        {
            if (!_paused)
            {
                _paused = true;
                Linux.Control(loop.EpollFd, Linux.EPOLL_CTL_DEL, fd, 0, 0);
                loop.Paused(this);
            }
        }

        public void Resume()
        {
            if (_paused && !listener.Closed)
            {
                _paused = false;
                Linux.Control(loop.EpollFd, Linux.EPOLL_CTL_ADD, fd, Linux.EPOLLIN | Linux.EPOLLEXCLUSIVE, (ulong)GCHandle.ToIntPtr(Handle));
            }
        }
    }
}

/// <summary>sockaddr_in / sockaddr_in6 / sockaddr_un as bytes.</summary>
internal static class SocketAddresses
{
    public static (IPAddress Address, int Port) Parse(ReadOnlySpan<byte> sockaddr)
    {
        if (sockaddr.Length < 4)
        {
            return (IPAddress.None, 0);
        }
        var family = BitConverter.ToUInt16(sockaddr[..2]);
        var port = (sockaddr[2] << 8) | sockaddr[3];
        return family switch
        {
            Linux.AF_INET when sockaddr.Length >= 8 => (new IPAddress(sockaddr[4..8]), port),
            Linux.AF_INET6 when sockaddr.Length >= 24 => (new IPAddress(sockaddr[8..24]), port),
            _ => (IPAddress.None, 0),
        };
    }

    public static byte[] Of(IPEndPoint endpoint)
    {
        var ip = endpoint.Address;
        if (ip.AddressFamily == AddressFamily.InterNetwork)
        {
            var a = new byte[16];
            BitConverter.TryWriteBytes(a.AsSpan(0, 2), (ushort)Linux.AF_INET);
            a[2] = (byte)(endpoint.Port >> 8);
            a[3] = (byte)endpoint.Port;
            ip.TryWriteBytes(a.AsSpan(4, 4), out _);
            return a;
        }
        var b = new byte[28];
        BitConverter.TryWriteBytes(b.AsSpan(0, 2), (ushort)Linux.AF_INET6);
        b[2] = (byte)(endpoint.Port >> 8);
        b[3] = (byte)endpoint.Port;
        ip.TryWriteBytes(b.AsSpan(8, 16), out _);
        BitConverter.TryWriteBytes(b.AsSpan(24, 4), (uint)ip.ScopeId);
        return b;
    }
}

/// <summary>
/// Idle keep-alive connections to one target, kept by one loop (no locks: only that loop's thread touches them).
/// A pooled connection the target closes is noticed by its readiness event and never handed out again.
/// </summary>
internal sealed class BackendPool
{
    private const int MaxIdle = 256;
    private const long IdleLimitMs = 55_000;

    private readonly EventLoop _loop;
    private readonly Stack<FdSocket> _idle = new();

    public BackendPool(EventLoop loop, string address)
    {
        _loop = loop;
        // Destination addresses are http://IP:PORT (an ip target, or an instance resolved to its address).
        if (Uri.TryCreate(address, UriKind.Absolute, out var uri) && IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip))
        {
            SockAddr = SocketAddresses.Of(new IPEndPoint(ip, uri.Port));
            Family = ip.AddressFamily == AddressFamily.InterNetwork ? Linux.AF_INET : Linux.AF_INET6;
        }
    }

    /// <summary>When a request last picked this target on this loop.</summary>
    public long LastUsed { get; set; }

    public int IdleCount => _idle.Count;

    /// <summary>Null when the address is not an IP literal (such a target is served by Kestrel).</summary>
    public byte[]? SockAddr { get; }
    public int Family { get; }

    public FdSocket? Take()
    {
        while (_idle.TryPop(out var s))
        {
            if (!s.Closed && !s.PeerGone)
            {
                s.Idle = false;
                return s;
            }
            s.Close();
        }
        return null;
    }

    public void Return(FdSocket s)
    {
        if (s.Closed || s.PeerGone || _idle.Count >= MaxIdle)
        {
            s.Close();
            return;
        }
        s.ReceiveTimeout = 0;
        s.SendTimeout = 0;
        s.IdleSince = Environment.TickCount64;
        s.PeerGone = false;
        s.Idle = true;
        _idle.Push(s);
    }

    /// <summary>A new non-blocking connection (not connected yet) on this pool's loop.</summary>
    public FdSocket Open()
    {
        var fd = Linux.socket(Family, Linux.SOCK_STREAM | Linux.SOCK_NONBLOCK | Linux.SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            throw new SocketException(Linux.Errno);
        }
        Linux.NoDelay(fd);
        try
        {
            return new FdSocket(_loop, fd);
        }
        catch
        {
            Linux.close(fd);
            throw;
        }
    }

    /// <summary>Closes connections idle for longer than targets usually keep them (the loop calls this 4 times a second).</summary>
    public void Trim(long now)
    {
        var stale = false;
        foreach (var s in _idle)
        {
            stale |= s.Closed || s.PeerGone || now - s.IdleSince >= IdleLimitMs;
        }
        if (!stale)
        {
            return;
        }
        var keep = new List<FdSocket>(_idle.Count);
        while (_idle.TryPop(out var s))
        {
            if (s.Closed || s.PeerGone || now - s.IdleSince >= IdleLimitMs)
            {
                s.Close();
            }
            else
            {
                keep.Add(s);
            }
        }
        for (var i = keep.Count - 1; i >= 0; i--)
        {
            _idle.Push(keep[i]);
        }
    }
}
