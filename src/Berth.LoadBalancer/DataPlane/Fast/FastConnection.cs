using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using Berth.Aws.Elbv2;
using Yarp.ReverseProxy.Model;

namespace Berth.LoadBalancer.DataPlane.Fast;

/// <summary>
/// One client connection on a listener port, served on its loop: each request head is read and checked; a plain
/// HTTP/1.1 request whose rule forwards to a group without stickiness is written to a pooled connection to the chosen
/// target with ALB's headers, and the response is relayed as it comes (framing kept: Content-Length, chunked, or until
/// the target closes). The first request the fast path does not handle hands the connection, from that request on, to
/// Kestrel over the private socket (with a first line naming the client and the listener port), and bytes are then
/// only relayed both ways.
/// </summary>
internal sealed class FastConnection(ListenerSocket listener, EventLoop loop, FdSocket client, IPAddress remote, int remotePort)
{
    private const int HeadReserve = 512; // room for the headers the load balancer adds
    private const long HeadTimeoutMs = 30_000;

    private readonly FastPath _fp = listener.Owner;
    private readonly byte[] _remoteText = Encoding.ASCII.GetBytes(remote.ToString());
    private byte[]? _buf;
    private int _start;
    private int _end;

    private enum Next
    {
        Continue,
        Close,
        Kestrel,
    }

    public async Task RunAsync()
    {
        var handedOver = false;
        try
        {
            while (true)
            {
                var next = await ReadHeadAsync().ConfigureAwait(false);
                if (next == Next.Continue)
                {
                    next = await ServeAsync().ConfigureAwait(false);
                }
                if (next == Next.Close)
                {
                    return;
                }
                if (next == Next.Kestrel)
                {
                    handedOver = await HandOverAsync().ConfigureAwait(false);
                    return;
                }
            }
        }
        catch (Exception e) when (e is SocketException or TimeoutException or IOException)
        {
            // The client went away, or stayed idle past the load balancer's idle timeout.
        }
        catch (Exception e)
        {
            _fp.ConnectionFailed(e);
        }
        finally
        {
            if (!handedOver)
            {
                client.Close();
                if (_buf is not null)
                {
                    loop.ReturnBuffer(_buf);
                    _buf = null;
                }
            }
        }
    }

    private TimeSpan IdleTimeout => _fp.Routing.Current.ByPort.TryGetValue(listener.Port, out var l) ? l.IdleTimeout : TimeSpan.FromSeconds(60);

    /// <summary>Reads until a whole request head is buffered at _start; Kestrel gets heads larger than the buffer.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<Next> ReadHeadAsync()
    {
        client.ReceiveTimeout = (long)IdleTimeout.TotalMilliseconds;
        client.SendTimeout = client.ReceiveTimeout; // a client that stops reading its response is dropped like an idle one
        long headStarted = 0;
        while (true)
        {
            if (_buf is not null && _end > _start && HttpWire.HeadEnd(_buf.AsSpan(_start, _end - _start)) >= 0)
            {
                return Next.Continue;
            }
            if (listener.Closed)
            {
                return Next.Close;
            }
            if (_buf is null || _start == _end)
            {
                // Nothing buffered: an idle keep-alive connection holds no buffer while it waits.
                _buf ??= loop.RentBuffer();
                _start = _end = 0;
                var got = client.TryReceiveNow(_buf);
                if (got == 0)
                {
                    return Next.Close;
                }
                if (got > 0)
                {
                    _end = got;
                    continue;
                }
                loop.ReturnBuffer(_buf);
                _buf = null;
                await client.WaitReadableAsync().ConfigureAwait(false);
                continue;
            }
            if (_end == _buf.Length)
            {
                if (_start == 0)
                {
                    return Next.Kestrel; // a head larger than 16 KiB
                }
                Buffer.BlockCopy(_buf, _start, _buf, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            // Part of a head is here: the rest must come within HeadTimeoutMs of the first part (as Kestrel's
            // RequestHeadersTimeout), whatever the idle timeout, so a client trickling a head cannot hold the connection.
            headStarted = headStarted == 0 ? Environment.TickCount64 : headStarted;
            client.ReceiveTimeout = Math.Max(1, HeadTimeoutMs - (Environment.TickCount64 - headStarted));
            var n = await client.ReceiveAsync(_buf.AsMemory(_end)).ConfigureAwait(false);
            if (n == 0)
            {
                return Next.Close;
            }
            _end += n;
        }
    }

    /// <summary>Serves the request whose head is buffered at _start, or says it is Kestrel's.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<Next> ServeAsync()
    {
        var buf = _buf!;
        var headLength = HttpWire.HeadEnd(buf.AsSpan(_start, _end - _start));
        if (headLength > buf.Length - HeadReserve || !_fp.Routing.Current.ByPort.TryGetValue(listener.Port, out var route))
        {
            return Next.Kestrel;
        }
        var output = loop.RentBuffer();
        try
        {
            var request = RequestHead.Rewrite(buf.AsSpan(_start, headLength), output, _remoteText, listener.PortText, _fp.Time.GetUtcNow());
            if (request.Length < 0 || Pick(route, buf.AsSpan(_start, headLength), request) is not { } pick)
            {
                return Next.Kestrel;
            }
            return await ForwardAsync(route, pick, request, output, headLength).ConfigureAwait(false);
        }
        finally
        {
            loop.ReturnBuffer(output);
        }
    }

    private readonly record struct Choice(string GroupId, DestinationState Destination, BackendPool Pool, StrongBox<int>? Held);

    /// <summary>The rule, group and target for the request, or null when it is Kestrel's to serve.</summary>
    private Choice? Pick(ListenerRoute route, ReadOnlySpan<byte> head, in RequestHead request)
    {
        CompiledRule rule;
        if (route.Rules.Count == 1)
        {
            rule = route.Rules[0];
        }
        else
        {
            if (route.TestsQuery)
            {
                return null;
            }
            rule = route.Match(new HeadRuleInput(head.ToArray(), request, remote));
        }
        if (rule.Action is not { Type: "forward", ForwardConfig: { } forward } || forward.TargetGroupStickinessConfig is { Enabled: true }
            || RuleMiddleware.WeightedPick(forward.TargetGroups!, Random.Shared) is not { } groupId
            || _fp.Lookup is not { } lookup || !lookup.TryGetCluster(groupId, out var cluster))
        {
            return null;
        }
        var config = cluster.Model.Config;
        var destinations = cluster.DestinationsState.AvailableDestinations;
        if (config.SessionAffinity is { Enabled: true } || destinations.Count == 0)
        {
            return null; // AWSALB cookies, and ALB's own 503, are Kestrel's
        }
        DestinationState? destination;
        StrongBox<int>? held = null;
        if (destinations.Count == 1)
        {
            destination = destinations[0];
        }
        else if (config.LoadBalancingPolicy == LeastOutstandingRequestsPolicy.PolicyName && _fp.LeastOutstanding is { } lor)
        {
            destination = lor.Pick(destinations, out held);
        }
        else
        {
            destination = _fp.RoundRobin?.Pick(cluster, destinations);
        }
        if (destination is null)
        {
            return null;
        }
        var pool = loop.Pool(destination.Model.Config.Address);
        if (pool.SockAddr is null)
        {
            Release(held);
            return null;
        }
        return new Choice(groupId, destination, pool, held);
    }

    private static void Release(StrongBox<int>? held)
    {
        if (held is not null)
        {
            Interlocked.Decrement(ref held.Value);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<Next> ForwardAsync(ListenerRoute route, Choice pick, RequestHead request, byte[] output, int headLength)
    {
        var metricName = _fp.Regions.MetricName(pick.GroupId) ?? pick.GroupId;
        var started = Stopwatch.GetTimestamp();
        var inFlight = _fp.InFlight.Of(pick.Destination);
        Interlocked.Increment(ref inFlight.Value);
        var idleMs = (long)route.IdleTimeout.TotalMilliseconds;
        var bodyStart = _start + headLength;
        var bodyBuffered = (int)Math.Min(request.ContentLength, _end - bodyStart);
        var bodyLeft = request.ContentLength - bodyBuffered;
        FdSocket? target = null;
        byte[]? response = null;
        try
        {
            // The head and what of the body is already here go in one write when they fit.
            var outLength = request.Length;
            if (bodyBuffered <= output.Length - outLength)
            {
                _buf.AsSpan(bodyStart, bodyBuffered).CopyTo(output.AsSpan(outLength));
                outLength += bodyBuffered;
            }
            var retried = false;
            while (true)
            {
                var reused = true;
                target = retried ? null : pick.Pool.Take(); // a retry gets a new connection, not another pooled one
                if (target is null)
                {
                    reused = false;
                    target = pick.Pool.Open();
                    target.SendTimeout = (long)_fp.Options.ConnectTimeout.TotalMilliseconds;
                    try
                    {
                        await target.ConnectAsync(pick.Pool.SockAddr!).ConfigureAwait(false);
                    }
                    catch (TimeoutException)
                    {
                        return await ElbErrorAsync(504, metricName, started).ConfigureAwait(false);
                    }
                    catch (SocketException)
                    {
                        return await ElbErrorAsync(502, metricName, started).ConfigureAwait(false);
                    }
                }
                target.SendTimeout = idleMs;
                target.ReceiveTimeout = idleMs;
                // A kept-alive connection the target closed meanwhile fails at once; the request has not been seen, so it
                // goes again on a new connection (only when all of it is still at hand).
                var canRetry = reused && !retried && bodyLeft == 0;
                try
                {
                    await target.SendAsync(output.AsMemory(0, outLength)).ConfigureAwait(false);
                    if (outLength == request.Length && bodyBuffered > 0)
                    {
                        await target.SendAsync(_buf.AsMemory(bodyStart, bodyBuffered)).ConfigureAwait(false);
                    }
                }
                catch (SocketException) when (canRetry)
                {
                    target.Close();
                    target = null;
                    retried = true;
                    continue;
                }
                catch (Exception e) when (e is SocketException or TimeoutException)
                {
                    return await ElbErrorAsync(e is TimeoutException ? 504 : 502, metricName, started).ConfigureAwait(false);
                }
                // The rest of the body, relayed as it arrives (each read within the idle timeout).
                _start = bodyStart + bodyBuffered;
                client.ReceiveTimeout = idleMs;
                while (bodyLeft > 0)
                {
                    if (_start == _end)
                    {
                        _start = _end = 0;
                        var n = await client.ReceiveAsync(_buf.AsMemory()).ConfigureAwait(false);
                        if (n == 0)
                        {
                            return Next.Close;
                        }
                        _end = n;
                    }
                    var chunk = (int)Math.Min(bodyLeft, _end - _start);
                    try
                    {
                        await target.SendAsync(_buf.AsMemory(_start, chunk)).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is SocketException or TimeoutException)
                    {
                        return await ElbErrorAsync(e is TimeoutException ? 504 : 502, metricName, started).ConfigureAwait(false);
                    }
                    _start += chunk;
                    bodyLeft -= chunk;
                }
                response ??= loop.RentBuffer();
                var (outcome, status) = await RelayResponseAsync(target, response, request.IsHead, metricName, started).ConfigureAwait(false);
                // Only a method that may be repeated: the target may have acted on the request before dropping the connection.
                if (outcome == RelayOutcome.TargetClosedEarly && canRetry && request.Idempotent)
                {
                    target.Close();
                    target = null;
                    retried = true;
                    continue;
                }
                switch (outcome)
                {
                    case RelayOutcome.TargetClosedEarly or RelayOutcome.BadResponse:
                        return await ElbErrorAsync(502, metricName, started).ConfigureAwait(false);
                    case RelayOutcome.TargetTimedOut:
                        return await ElbErrorAsync(504, metricName, started).ConfigureAwait(false);
                    case RelayOutcome.Done:
                        Volatile.Write(ref loop.Forwarded, loop.Forwarded + 1);
                        _fp.Metrics.Record(metricName, status, fromTarget: true, Stopwatch.GetElapsedTime(started));
                        pick.Pool.Return(target);
                        target = null;
                        return request.ClientClose ? Next.Close : Next.Continue;
                    case RelayOutcome.DoneCloseTarget:
                        Volatile.Write(ref loop.Forwarded, loop.Forwarded + 1);
                        _fp.Metrics.Record(metricName, status, fromTarget: true, Stopwatch.GetElapsedTime(started));
                        return request.ClientClose ? Next.Close : Next.Continue;
                    default:
                        // Closes the client too: the response was cut off, or was delimited by the target's close.
                        if (status > 0)
                        {
                            _fp.Metrics.Record(metricName, status, fromTarget: true, Stopwatch.GetElapsedTime(started));
                        }
                        return Next.Close;
                }
            }
        }
        finally
        {
            target?.Close();
            if (response is not null)
            {
                loop.ReturnBuffer(response);
            }
            Interlocked.Decrement(ref inFlight.Value);
            Release(pick.Held);
        }
    }

    private enum RelayOutcome
    {
        /// <summary>Whole response relayed; the target connection may be reused.</summary>
        Done,

        /// <summary>Whole response relayed; the target connection must be closed (it said so, or sent more than the response).</summary>
        DoneCloseTarget,

        /// <summary>The target closed or reset the connection before any response byte (a kept-alive connection it had just dropped).</summary>
        TargetClosedEarly,

        /// <summary>Not an HTTP/1.x response, or cut off inside its head: 502.</summary>
        BadResponse,

        /// <summary>No response head within the idle timeout.</summary>
        TargetTimedOut,

        /// <summary>Relayed until the target closed (or the response was cut off): the client connection closes.</summary>
        CloseClient,
    }

    /// <summary>Reads the response head, writes it to the client (hop-by-hop headers out), then relays the body.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<(RelayOutcome, int)> RelayResponseAsync(FdSocket target, byte[] response, bool isHead, string metricName, long started)
    {
        var length = 0;
        var interim = false;
        ResponseHead head;
        while (true)
        {
            int headEnd;
            while ((headEnd = HttpWire.HeadEnd(response.AsSpan(0, length))) < 0)
            {
                if (length == response.Length)
                {
                    return (RelayOutcome.BadResponse, 0); // a head over 16 KiB: ALB answers 502 too
                }
                int n;
                try
                {
                    n = await target.ReceiveAsync(response.AsMemory(length)).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    return (RelayOutcome.TargetTimedOut, 0);
                }
                catch (SocketException)
                {
                    return (length == 0 && !interim ? RelayOutcome.TargetClosedEarly : RelayOutcome.BadResponse, 0);
                }
                if (n == 0)
                {
                    return (length == 0 && !interim ? RelayOutcome.TargetClosedEarly : RelayOutcome.BadResponse, 0);
                }
                length += n;
            }
            head = ResponseHead.Parse(response.AsSpan(0, headEnd));
            if (!head.Valid)
            {
                return (RelayOutcome.BadResponse, 0);
            }
            if (head.Status >= 200)
            {
                break;
            }
            // An interim response (100, 102, 103) goes to the client as it is; the real one follows.
            interim = true;
            await client.SendAsync(response.AsMemory(0, headEnd)).ConfigureAwait(false);
            Buffer.BlockCopy(response, headEnd, response, 0, length - headEnd);
            length -= headEnd;
        }
        var headLength = head.Length;
        var bodyless = isHead || head.Status is 204 or 304;
        var closeDelimited = !bodyless && !head.Chunked && head.ContentLength < 0;
        // The head to the client: rewritten only when it carries hop-by-hop headers or the client must be told we close.
        byte[]? rewritten = null;
        var rewrittenLength = 0;
        try
        {
            if (head.HasHopByHop || closeDelimited)
            {
                rewritten = loop.RentBuffer();
                rewrittenLength = ResponseHead.Rewrite(response.AsSpan(0, headLength), rewritten, closeDelimited);
            }
            var bodyHere = length - headLength;
            if (bodyless)
            {
                await SendHeadAndBodyAsync(response, headLength, 0, rewritten, rewrittenLength).ConfigureAwait(false);
                return (bodyHere == 0 && !head.TargetCloses ? RelayOutcome.Done : RelayOutcome.DoneCloseTarget, head.Status);
            }
            if (head.ContentLength >= 0 && !head.Chunked)
            {
                var take = (int)Math.Min(head.ContentLength, bodyHere);
                var extra = bodyHere > head.ContentLength;
                await SendHeadAndBodyAsync(response, headLength, take, rewritten, rewrittenLength).ConfigureAwait(false);
                var left = head.ContentLength - take;
                while (left > 0)
                {
                    var n = await target.ReceiveAsync(response).ConfigureAwait(false);
                    if (n == 0)
                    {
                        return (RelayOutcome.CloseClient, head.Status);
                    }
                    var part = (int)Math.Min(left, n);
                    extra |= n > left;
                    await client.SendAsync(response.AsMemory(0, part)).ConfigureAwait(false);
                    left -= part;
                }
                return (extra || head.TargetCloses ? RelayOutcome.DoneCloseTarget : RelayOutcome.Done, head.Status);
            }
            if (head.Chunked)
            {
                var scanner = default(ChunkedScanner);
                var used = scanner.Scan(response.AsSpan(headLength, bodyHere));
                var extra = used < bodyHere;
                await SendHeadAndBodyAsync(response, headLength, used, rewritten, rewrittenLength).ConfigureAwait(false);
                while (!scanner.Done)
                {
                    if (scanner.Invalid)
                    {
                        return (RelayOutcome.CloseClient, head.Status);
                    }
                    var n = await target.ReceiveAsync(response).ConfigureAwait(false);
                    if (n == 0)
                    {
                        return (RelayOutcome.CloseClient, head.Status);
                    }
                    used = scanner.Scan(response.AsSpan(0, n));
                    extra |= used < n;
                    await client.SendAsync(response.AsMemory(0, used)).ConfigureAwait(false);
                }
                return (extra || head.TargetCloses ? RelayOutcome.DoneCloseTarget : RelayOutcome.Done, head.Status);
            }
            // Neither length nor chunks: the body ends when the target closes, and so does the client's connection.
            await SendHeadAndBodyAsync(response, headLength, bodyHere, rewritten, rewrittenLength).ConfigureAwait(false);
            while (true)
            {
                var n = await target.ReceiveAsync(response).ConfigureAwait(false);
                if (n == 0)
                {
                    return (RelayOutcome.CloseClient, head.Status);
                }
                await client.SendAsync(response.AsMemory(0, n)).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is SocketException or TimeoutException)
        {
            // Cut off mid-response (either side): the client's connection cannot carry another request.
            return (RelayOutcome.CloseClient, head.Status);
        }
        finally
        {
            if (rewritten is not null)
            {
                loop.ReturnBuffer(rewritten);
            }
        }
    }

    /// <summary>
    /// The head and the body bytes that came with it: one write from the response buffer, where they lie together, or
    /// from the rewritten head's buffer when the body fits after it (the common small response); two writes otherwise.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask SendHeadAndBodyAsync(byte[] response, int headLength, int bodyLength, byte[]? rewritten, int rewrittenLength)
    {
        if (rewritten is null)
        {
            await client.SendAsync(response.AsMemory(0, headLength + bodyLength)).ConfigureAwait(false);
            return;
        }
        var body = response.AsMemory(headLength, bodyLength);
        if (rewrittenLength + bodyLength <= rewritten.Length)
        {
            body.CopyTo(rewritten.AsMemory(rewrittenLength));
            await client.SendAsync(rewritten.AsMemory(0, rewrittenLength + bodyLength)).ConfigureAwait(false);
            return;
        }
        await client.SendAsync(rewritten.AsMemory(0, rewrittenLength)).ConfigureAwait(false);
        if (bodyLength > 0)
        {
            await client.SendAsync(body).ConfigureAwait(false);
        }
    }

    /// <summary>ALB's error pages; the fast path closes the connection after one (the client simply reconnects).</summary>
    private static readonly Dictionary<int, byte[]> ErrorResponses = new[] { 502, 503, 504 }.ToDictionary(s => s, s =>
    {
        var (reason, page) = RuleMiddleware.ElbErrorPage(s);
        return Encoding.ASCII.GetBytes($"HTTP/1.1 {s} {reason}\r\nContent-Type: text/html\r\nContent-Length: {page.Length}\r\nConnection: close\r\n\r\n{page}");
    });

    private async ValueTask<Next> ElbErrorAsync(int status, string metricName, long started)
    {
        _fp.Metrics.Record(metricName, status, fromTarget: false, Stopwatch.GetElapsedTime(started));
        await client.SendAsync(ErrorResponses[status]).ConfigureAwait(false);
        return Next.Close;
    }

    /// <summary>
    /// Gives the connection to Kestrel from the buffered request on: a first line naming the client and the listener
    /// port, then the bytes relayed both ways until either side closes. Returns true once the relay owns the sockets.
    /// </summary>
    private async ValueTask<bool> HandOverAsync()
    {
        var kestrel = new FdSocket(loop, OpenUnix());
        try
        {
            kestrel.SendTimeout = 5000;
            await kestrel.ConnectAsync(_fp.KestrelAddress).ConfigureAwait(false);
            kestrel.SendTimeout = 0;
            await kestrel.SendAsync(HandOverPreamble.Line(remote, remotePort, listener.Port)).ConfigureAwait(false);
            if (_buf is not null && _end > _start)
            {
                await kestrel.SendAsync(_buf.AsMemory(_start, _end - _start)).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is SocketException or TimeoutException)
        {
            kestrel.Close();
            return false;
        }
        client.ReceiveTimeout = 0;
        client.SendTimeout = 0;
        Volatile.Write(ref loop.HandedOver, loop.HandedOver + 1);
        var relay = new Relay(loop, client, kestrel);
        if (_buf is not null)
        {
            loop.ReturnBuffer(_buf);
            _buf = null;
        }
        relay.Start();
        return true;
    }

    private static int OpenUnix()
    {
        var fd = Linux.socket(Linux.AF_UNIX, Linux.SOCK_STREAM | Linux.SOCK_NONBLOCK | Linux.SOCK_CLOEXEC, 0);
        return fd >= 0 ? fd : throw new SocketException(Linux.Errno);
    }

    /// <summary>Bytes both ways between the client (a) and Kestrel (b); Kestrel closing, or both directions done, closes both.</summary>
    private sealed class Relay(EventLoop loop, FdSocket a, FdSocket b)
    {
        private int _running = 2;

        public void Start()
        {
            _ = PumpAsync(a, b);
            _ = PumpAsync(b, a);
        }

        private async Task PumpAsync(FdSocket from, FdSocket to)
        {
            var buffer = loop.RentBuffer();
            try
            {
                while (true)
                {
                    var n = await from.ReceiveAsync(buffer).ConfigureAwait(false);
                    if (n == 0)
                    {
                        if (from == b)
                        {
                            // Kestrel closed: nothing more can come for this client (HTTP has no use for a half-closed
                            // server side), so the client's connection closes too rather than wait for the client.
                            a.Close();
                            b.Close();
                            break;
                        }
                        to.ShutdownSend(); // the client is done sending; Kestrel may still be answering
                        break;
                    }
                    await to.SendAsync(buffer.AsMemory(0, n)).ConfigureAwait(false);
                }
            }
            catch (Exception e) when (e is SocketException or TimeoutException)
            {
                from.Close();
                to.Close();
            }
            finally
            {
                loop.ReturnBuffer(buffer);
                if (--_running == 0)
                {
                    a.Close();
                    b.Close();
                }
            }
        }
    }
}
