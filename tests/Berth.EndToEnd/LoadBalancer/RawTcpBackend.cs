using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Berth.EndToEnd.LoadBalancer;

/// <summary>
/// A target that speaks HTTP by hand, for answers Kestrel will not produce: on each connection it reads one request
/// head, writes <c>reply</c> bytes exactly, and closes. <c>GET /health</c> gets a plain 200 so the target can be healthy.
/// </summary>
public sealed class RawTcpBackend : IAsyncDisposable
{
    private static readonly byte[] HealthReply = Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly byte[] _reply;
    private int _requests;

    public RawTcpBackend(string reply)
    {
        _reply = Encoding.ASCII.GetBytes(reply);
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _loop = AcceptLoopAsync();
    }

    public int Port { get; }

    /// <summary>Requests other than the health check.</summary>
    public int Requests => Volatile.Read(ref _requests);

    /// <summary>Connections accepted (health checks included).</summary>
    public int Connections => Volatile.Read(ref _connections);

    /// <summary>Milliseconds to wait after the reply before closing (0: at once).</summary>
    public volatile int CloseDelayMs;

    private int _connections;

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            Interlocked.Increment(ref _connections);
            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                timeout.CancelAfter(TimeSpan.FromSeconds(20));
                var stream = client.GetStream();
                var head = await ReadHeadAsync(stream, timeout.Token);
                if (head.StartsWith("GET /health", StringComparison.Ordinal))
                {
                    await stream.WriteAsync(HealthReply, timeout.Token);
                    return;
                }
                Interlocked.Increment(ref _requests);
                await stream.WriteAsync(_reply, timeout.Token);
                await stream.FlushAsync(timeout.Token);
                if (CloseDelayMs > 0)
                {
                    await Task.Delay(CloseDelayMs, timeout.Token);
                }
                client.Client.Shutdown(SocketShutdown.Send);
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
            {
                // The peer went away; nothing to answer.
            }
        }
    }

    /// <summary>Reads up to the blank line ending the request head (the tests send no request bodies here).</summary>
    private static async Task<string> ReadHeadAsync(NetworkStream stream, CancellationToken ct)
    {
        var buffer = new List<byte>();
        var one = new byte[1];
        while (buffer.Count < 65536)
        {
            if (await stream.ReadAsync(one, ct) == 0)
            {
                break;
            }
            buffer.Add(one[0]);
            var n = buffer.Count;
            if (n >= 4 && buffer[n - 4] == '\r' && buffer[n - 3] == '\n' && buffer[n - 2] == '\r' && buffer[n - 1] == '\n')
            {
                break;
            }
        }
        return Encoding.ASCII.GetString(buffer.ToArray());
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _loop;
        _stop.Dispose();
    }
}
