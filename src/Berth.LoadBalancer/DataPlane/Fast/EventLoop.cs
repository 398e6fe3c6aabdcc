using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;

namespace Berth.LoadBalancer.DataPlane.Fast;

/// <summary>
/// One event-loop thread with its own epoll instance, as nginx's workers have: every socket registered here is read,
/// written and resumed on this thread only, so a request's continuations run where its readiness event arrived (no
/// thread-pool hop, no locks), and connections to targets are pooled per loop. Sockets are registered edge-triggered
/// once; an operation tries its syscall first and parks only on EAGAIN. The loop also runs queued work (from other
/// threads, woken through an eventfd) and, every quarter second, times out parked operations past their deadline.
/// </summary>
internal sealed unsafe class EventLoop : IDisposable
{
    private const int MaxEvents = 256;
    private static readonly TimeSpan SweepEvery = TimeSpan.FromMilliseconds(250);

    private readonly int _epfd;
    private readonly int _wakeFd;
    private readonly Thread _thread;
    private readonly ConcurrentQueue<Action> _work = new();
    private readonly HashSet<FdSocket> _sockets = [];
    private readonly List<GCHandle> _freeAfterBatch = [];
    private readonly Stack<byte[]> _buffers = new();
    private readonly Dictionary<string, BackendPool> _pools = new(StringComparer.Ordinal);
    private volatile bool _stopping;
    private long _lastSweep;

    public EventLoop(int index)
    {
        Index = index;
        _epfd = Linux.epoll_create1(0x80000 /* EPOLL_CLOEXEC */);
        _wakeFd = Linux.eventfd(0, Linux.SOCK_NONBLOCK | Linux.SOCK_CLOEXEC);
        if (_epfd < 0 || _wakeFd < 0)
        {
            throw new SocketException(Linux.Errno);
        }
        Linux.Control(_epfd, Linux.EPOLL_CTL_ADD, _wakeFd, Linux.EPOLLIN | Linux.EPOLLET, 0);
        _thread = new Thread(Run) { IsBackground = true, Name = $"berth-lb-loop-{index}" };
    }

    public int Index { get; }

    /// <summary>Requests forwarded by this loop's connections (written by the loop thread only).</summary>
    public long Forwarded;

    /// <summary>Connections this loop handed to Kestrel.</summary>
    public long HandedOver;

    /// <summary>Client connections open on this loop (loop thread only).</summary>
    public int ClientConnections { get; private set; }

    /// <summary>Client connections this loop takes before it stops accepting.</summary>
    public int MaxClientConnections { get; set; } = int.MaxValue;

    private readonly List<IPausable> _paused = [];

    /// <summary>An acceptor that stopped (connection cap, or out of descriptors) and asks to be resumed by the sweep.</summary>
    public void Paused(IPausable acceptor) => _paused.Add(acceptor);

    public void ClientOpened() => ClientConnections++;

    public int EpollFd => _epfd;

    public void Start() => _thread.Start();

    /// <summary>Runs <paramref name="action"/> on the loop thread.</summary>
    public void Post(Action action)
    {
        _work.Enqueue(action);
        ulong one = 1;
        Linux.write(_wakeFd, (byte*)&one, 8);
    }

    /// <summary>Target connections kept alive by this loop, per target address.</summary>
    public BackendPool Pool(string address)
    {
        if (!_pools.TryGetValue(address, out var pool))
        {
            pool = new BackendPool(this, address);
            _pools[address] = pool;
        }
        pool.LastUsed = Environment.TickCount64;
        return pool;
    }

    /// <summary>A 16 KiB buffer from the loop's own pool (loop thread only).</summary>
    public byte[] RentBuffer() => _buffers.TryPop(out var b) ? b : new byte[16 * 1024];

    public void ReturnBuffer(byte[] buffer)
    {
        if (buffer.Length == 16 * 1024 && _buffers.Count < 1024)
        {
            _buffers.Push(buffer);
        }
    }

    /// <summary>Adds a descriptor of this loop's, edge-triggered; its events reach <paramref name="socket"/>.</summary>
    public void Register(FdSocket socket)
    {
        var handle = GCHandle.Alloc(socket);
        socket.Handle = handle;
        _sockets.Add(socket);
        if (Linux.Control(_epfd, Linux.EPOLL_CTL_ADD, socket.Fd, Linux.EPOLLIN | Linux.EPOLLOUT | Linux.EPOLLRDHUP | Linux.EPOLLET, (ulong)GCHandle.ToIntPtr(handle)) != 0)
        {
            var errno = Linux.Errno;
            _sockets.Remove(socket);
            handle.Free();
            throw new SocketException(errno);
        }
    }

    /// <summary>Called by a socket as it closes: its handle is freed once the current batch of events is through.</summary>
    public void Unregister(FdSocket socket)
    {
        _sockets.Remove(socket);
        if (socket.IsClient)
        {
            ClientConnections--;
        }
        if (socket.Handle.IsAllocated)
        {
            _freeAfterBatch.Add(socket.Handle);
        }
    }

    private void Run()
    {
        var events = (byte*)NativeMemory.Alloc((nuint)(MaxEvents * Linux.EpollEventSize));
        try
        {
            while (!_stopping)
            {
                var n = Linux.epoll_wait(_epfd, events, MaxEvents, 250);
                if (n < 0 && Linux.Errno != Linux.EINTR)
                {
                    break;
                }
                for (var i = 0; i < n; i++)
                {
                    var ev = events + (i * Linux.EpollEventSize);
                    var flags = *(uint*)ev;
                    var data = *(ulong*)(ev + Linux.EpollDataOffset);
                    if (data == 0)
                    {
                        ulong drained;
                        Linux.read(_wakeFd, (byte*)&drained, 8);
                        continue;
                    }
                    if (GCHandle.FromIntPtr((nint)data).Target is IEventTarget target)
                    {
                        Guard(target, flags);
                    }
                }
                while (_work.TryDequeue(out var work))
                {
                    Guard(work);
                }
                foreach (var h in _freeAfterBatch)
                {
                    h.Free();
                }
                _freeAfterBatch.Clear();
                var now = Environment.TickCount64;
                if (now - _lastSweep >= SweepEvery.TotalMilliseconds)
                {
                    _lastSweep = now;
                    Sweep(now);
                }
            }
        }
        finally
        {
            NativeMemory.Free(events);
        }
    }

    private static void Guard(IEventTarget target, uint flags)
    {
        try
        {
            target.OnEvents(flags);
        }
        catch (Exception)
        {
            // A continuation's failure belongs to its connection, which has already been told; the loop goes on.
        }
    }

    private static void Guard(Action work)
    {
        try
        {
            work();
        }
        catch (Exception)
        {
            // Same as above: one connection's failure never stops the loop.
        }
    }

    private readonly List<FdSocket> _expired = [];

    private void Sweep(long now)
    {
        if (_paused.Count > 0 && ClientConnections < MaxClientConnections)
        {
            foreach (var a in _paused)
            {
                a.Resume();
            }
            _paused.Clear();
        }
        foreach (var s in _sockets)
        {
            if (s.Expired(now))
            {
                _expired.Add(s);
            }
        }
        foreach (var s in _expired)
        {
            s.TimeOut();
        }
        _expired.Clear();
        foreach (var pool in _pools.Values)
        {
            pool.Trim(now);
        }
        // Targets come and go with deployments: a pool unused for ten minutes and holding nothing is forgotten.
        foreach (var (address, pool) in _pools)
        {
            if (pool.IdleCount == 0 && now - pool.LastUsed > 600_000)
            {
                _pools.Remove(address);
            }
        }
    }

    public void Dispose()
    {
        _stopping = true;
        Post(() => { });
        _thread.Join(TimeSpan.FromSeconds(5));
        foreach (var s in _sockets.ToList())
        {
            s.Close();
        }
        Linux.close(_wakeFd);
        Linux.close(_epfd);
    }
}

/// <summary>An acceptor the loop resumes once it may take connections again.</summary>
internal interface IPausable
{
    void Resume();
}

/// <summary>Something registered with a loop's epoll.</summary>
internal interface IEventTarget
{
    void OnEvents(uint flags);
}

/// <summary>
/// A non-blocking socket owned by one <see cref="EventLoop"/>: receive, send and connect as value tasks that complete
/// at once when the syscall can, and otherwise park until the loop sees the descriptor ready (then the continuation runs
/// on the loop thread). One receive and one send may be outstanding at a time; each may carry a deadline.
/// </summary>
internal sealed unsafe class FdSocket : IEventTarget
{
    private readonly Op _read = new();
    private readonly Op _write = new();
    private bool _closed;

    // False once a receive found the socket drained (EAGAIN, or fewer bytes than asked for) and no readiness event has
    // come since: being edge-triggered, the next arrival is bound to raise one, so a receive may park at once instead
    // of asking the kernel first (a syscall saved per wait, e.g. for every response a target has yet to send).
    private bool _mayHaveData = true;

    // Set once an event said the peer closed its side (or the socket failed): from then on a receive always asks the
    // kernel (it returns 0), since that edge was the last one — data and the close often come in one event.
    private bool _readShut;

    public FdSocket(EventLoop loop, int fd)
    {
        Loop = loop;
        Fd = fd;
        loop.Register(this);
    }

    public EventLoop Loop { get; }
    public int Fd { get; }
    public GCHandle Handle { get; set; }

    /// <summary>A listener's client (counted against the loop's connection cap).</summary>
    public bool IsClient { get; init; }
    public bool Closed => _closed;

    /// <summary>Set when the peer closed or failed while nothing was waiting (an idle pooled connection the target dropped).</summary>
    public bool PeerGone { get; set; }

    /// <summary>Milliseconds a parked receive may wait (0: no limit).</summary>
    public long ReceiveTimeout { get; set; }

    /// <summary>Milliseconds a parked send or connect may wait (0: no limit).</summary>
    public long SendTimeout { get; set; }

    /// <summary>When this socket last became idle (pooled connections); used by the pool's trimming.</summary>
    public long IdleSince { get; set; }

    /// <summary>True while the socket sits in a pool: any readiness then means the target closed or broke it.</summary>
    public bool Idle { get; set; }

    /// <summary>Receives into <paramref name="buffer"/>; 0 means the peer closed its side.</summary>
    public ValueTask<int> ReceiveAsync(Memory<byte> buffer)
    {
        if (!_mayHaveData)
        {
            return _read.Park(OpKind.Receive, buffer, ReceiveTimeout);
        }
        var n = TryReceive(buffer.Span, out var errno);
        if (n >= 0)
        {
            return new ValueTask<int>(n);
        }
        if (errno != Linux.EAGAIN)
        {
            return ValueTask.FromException<int>(new SocketException(errno));
        }
        return _read.Park(OpKind.Receive, buffer, ReceiveTimeout);
    }

    /// <summary>One receive that never parks: bytes read, 0 when the peer closed, -1 when nothing is there yet.</summary>
    public int TryReceiveNow(Span<byte> buffer)
    {
        if (!_mayHaveData)
        {
            return -1;
        }
        var n = TryReceive(buffer, out var errno);
        if (n >= 0)
        {
            return n;
        }
        return errno == Linux.EAGAIN ? -1 : throw new SocketException(errno);
    }

    /// <summary>Completes when the socket has data (or the peer closed): for idle connections that hold no buffer.</summary>
    public ValueTask<int> WaitReadableAsync() => _mayHaveData ? new ValueTask<int>(0) : _read.Park(OpKind.WaitReadable, default, ReceiveTimeout);

    /// <summary>Sends all of <paramref name="data"/>.</summary>
    public ValueTask<int> SendAsync(ReadOnlyMemory<byte> data)
    {
        var sent = 0;
        while (sent < data.Length)
        {
            var n = TrySend(data.Span[sent..], out var errno);
            if (n < 0)
            {
                if (errno == Linux.EAGAIN)
                {
                    return _write.Park(OpKind.Send, MemoryMarshal.AsMemory(data[sent..]), SendTimeout, data.Length);
                }
                return ValueTask.FromException<int>(new SocketException(errno));
            }
            sent += n;
        }
        return new ValueTask<int>(data.Length);
    }

    /// <summary>Connects a non-blocking socket to <paramref name="address"/> (a sockaddr).</summary>
    public ValueTask<int> ConnectAsync(byte[] address)
    {
        int rc;
        fixed (byte* a = address)
        {
            rc = Linux.connect(Fd, a, (uint)address.Length);
        }
        if (rc == 0)
        {
            return new ValueTask<int>(0);
        }
        var errno = Linux.Errno;
        if (errno is Linux.EINPROGRESS or Linux.EAGAIN)
        {
            return _write.Park(OpKind.Connect, default, SendTimeout);
        }
        return ValueTask.FromException<int>(new SocketException(errno));
    }

    public void ShutdownSend() => Linux.shutdown(Fd, Linux.SHUT_WR);

    private int TryReceive(Span<byte> buffer, out int errno)
    {
        errno = 0;
        while (true)
        {
            nint n;
            fixed (byte* p = buffer)
            {
                n = Linux.recv(Fd, p, buffer.Length, 0);
            }
            if (n >= 0)
            {
                _mayHaveData = n == buffer.Length || n == 0 || _readShut;
                return (int)n;
            }
            errno = Linux.Errno;
            if (errno == Linux.EAGAIN)
            {
                _mayHaveData = _readShut;
            }
            if (errno != Linux.EINTR)
            {
                return -1;
            }
        }
    }

    private int TrySend(ReadOnlySpan<byte> data, out int errno)
    {
        errno = 0;
        while (true)
        {
            nint n;
            fixed (byte* p = data)
            {
                n = Linux.send(Fd, p, data.Length, Linux.MSG_NOSIGNAL);
            }
            if (n >= 0)
            {
                return (int)n;
            }
            errno = Linux.Errno;
            if (errno != Linux.EINTR)
            {
                return -1;
            }
        }
    }

    public void OnEvents(uint flags)
    {
        if (_closed)
        {
            return;
        }
        var failed = (flags & (Linux.EPOLLERR | Linux.EPOLLHUP)) != 0;
        if ((flags & (Linux.EPOLLIN | Linux.EPOLLRDHUP)) != 0 || failed)
        {
            _mayHaveData = true;
            _readShut |= failed || (flags & Linux.EPOLLRDHUP) != 0;
            if (_read.Pending)
            {
                ResumeRead();
            }
            else if (Idle)
            {
                PeerGone = true;
            }
        }
        if (!_closed && ((flags & Linux.EPOLLOUT) != 0 || failed) && _write.Pending)
        {
            ResumeWrite();
        }
    }

    private void ResumeRead()
    {
        if (_read.Kind == OpKind.WaitReadable)
        {
            _read.Complete(0);
            return;
        }
        var n = TryReceive(_read.Buffer.Span, out var errno);
        if (n >= 0)
        {
            _read.Complete(n);
        }
        else if (errno != Linux.EAGAIN)
        {
            _read.Fail(new SocketException(errno));
        }
    }

    private void ResumeWrite()
    {
        if (_write.Kind == OpKind.Connect)
        {
            var err = Linux.SocketError(Fd);
            if (err == 0)
            {
                _write.Complete(0);
            }
            else if (err != Linux.EINPROGRESS)
            {
                _write.Fail(new SocketException(err));
            }
            return;
        }
        while (_write.Buffer.Length > 0)
        {
            var n = TrySend(_write.Buffer.Span, out var errno);
            if (n < 0)
            {
                if (errno != Linux.EAGAIN)
                {
                    _write.Fail(new SocketException(errno));
                }
                return;
            }
            _write.Buffer = _write.Buffer[n..];
        }
        _write.Complete(_write.Total);
    }

    public bool Expired(long now) => _read.Expired(now) || _write.Expired(now);

    public void TimeOut()
    {
        if (_read.Expired(Environment.TickCount64))
        {
            _read.Fail(new TimeoutException());
        }
        if (_write.Expired(Environment.TickCount64))
        {
            _write.Fail(new TimeoutException());
        }
    }

    /// <summary>Closes the descriptor; a parked operation fails (its connection unwinds).</summary>
    public void Close()
    {
        if (_closed)
        {
            return;
        }
        _closed = true;
        Loop.Unregister(this);
        Linux.close(Fd);
        if (_read.Pending)
        {
            _read.Fail(new SocketException((int)SocketError.OperationAborted));
        }
        if (_write.Pending)
        {
            _write.Fail(new SocketException((int)SocketError.OperationAborted));
        }
    }

    private enum OpKind
    {
        Receive,
        WaitReadable,
        Send,
        Connect,
    }

    /// <summary>A parked operation: a reusable value-task source whose continuation runs inline on the loop thread.</summary>
    private sealed class Op : IValueTaskSource<int>
    {
        private ManualResetValueTaskSourceCore<int> _core = new() { RunContinuationsAsynchronously = false };

        public bool Pending { get; private set; }
        public OpKind Kind { get; private set; }
        public Memory<byte> Buffer { get; set; }
        public int Total { get; private set; }
        private long _deadline;

        public ValueTask<int> Park(OpKind kind, Memory<byte> buffer, long timeoutMs, int total = 0)
        {
            _core.Reset();
            Pending = true;
            Kind = kind;
            Buffer = buffer;
            Total = total;
            _deadline = timeoutMs > 0 ? Environment.TickCount64 + timeoutMs : 0;
            return new ValueTask<int>(this, _core.Version);
        }

        public bool Expired(long now) => Pending && _deadline != 0 && now >= _deadline;

        public void Complete(int result)
        {
            Pending = false;
            Buffer = default;
            _core.SetResult(result);
        }

        public void Fail(Exception e)
        {
            Pending = false;
            Buffer = default;
            _core.SetException(e);
        }

        public int GetResult(short token) => _core.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
            => _core.OnCompleted(continuation, state, token, flags);
    }
}
