using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Berth.EndToEnd.LoadBalancer;

/// <summary>
/// A small HTTP server on a free loopback port, standing in for a task behind the load balancer:
/// <c>/</c> answers its name, <c>/health</c> the status the test sets, <c>/slow?ms=N</c> answers after N ms,
/// <c>/headers</c> echoes the request headers, <c>/reset</c> drops the connection; a WebSocket request gets an echo.
/// For wire tests: <c>/echo</c> answers "{length} {sha256 hex}" of the request body, <c>/chunked?n=N</c> streams N chunks
/// of 2 KiB without a Content-Length (see <see cref="ChunkedBody"/>), <c>/nocontent</c> answers 204, <c>/bigheader</c> answers
/// with an 8 KiB X-Big header, <c>/close</c> answers with <c>Connection: close</c>, and a path under <c>/echo-path/</c>
/// answers the request target exactly as it arrived.
/// </summary>
public sealed class TestBackend : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _requests;

    private TestBackend(string name, WebApplication app)
    {
        Name = name;
        _app = app;
    }

    public string Name { get; }
    public int Port { get; private set; }
    public volatile int HealthStatus = 200;
    public int Requests => Volatile.Read(ref _requests);

    public static async Task<TestBackend> StartAsync(string name)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var backend = new TestBackend(name, app);
        app.UseWebSockets();
        app.Run(async ctx =>
        {
            var path = ctx.Request.Path.Value ?? "/";
            if (ctx.WebSockets.IsWebSocketRequest)
            {
                // Echoes each text message back with the backend's name in front.
                using var ws = await ctx.WebSockets.AcceptWebSocketAsync();
                var buffer = new byte[4096];
                while (true)
                {
                    var r = await ws.ReceiveAsync(buffer, CancellationToken.None);
                    if (r.MessageType == System.Net.WebSockets.WebSocketMessageType.Close)
                    {
                        await ws.CloseAsync(System.Net.WebSockets.WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);
                        return;
                    }
                    var reply = Encoding.UTF8.GetBytes(name + ":" + Encoding.UTF8.GetString(buffer, 0, r.Count));
                    await ws.SendAsync(reply, System.Net.WebSockets.WebSocketMessageType.Text, true, CancellationToken.None);
                }
            }
            if (path == "/health")
            {
                ctx.Response.StatusCode = backend.HealthStatus;
                await ctx.Response.WriteAsync("health");
                return;
            }
            Interlocked.Increment(ref backend._requests);
            if (path.StartsWith("/echo-path/", StringComparison.Ordinal))
            {
                var raw = ctx.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()!.RawTarget;
                await ctx.Response.WriteAsync(raw);
                return;
            }
            // The last segment chooses the behaviour, so rules can route /api/slow and /slow alike.
            switch (path[path.LastIndexOf('/')..])
            {
                case "/slow":
                    await Task.Delay(int.Parse(ctx.Request.Query["ms"].ToString(), System.Globalization.CultureInfo.InvariantCulture));
                    await ctx.Response.WriteAsync(name);
                    break;
                case "/headers":
                    var sb = new StringBuilder();
                    foreach (var h in ctx.Request.Headers)
                    {
                        sb.Append(h.Key).Append(": ").Append(h.Value.ToString()).Append('\n');
                    }
                    await ctx.Response.WriteAsync(sb.ToString());
                    break;
                case "/reset":
                    ctx.Abort();
                    break;
                case "/echo":
                    {
                        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
                        var buf = new byte[16384];
                        long length = 0;
                        int n;
                        while ((n = await ctx.Request.Body.ReadAsync(buf)) > 0)
                        {
                            sha.AppendData(buf, 0, n);
                            length += n;
                        }
                        await ctx.Response.WriteAsync(length.ToString(System.Globalization.CultureInfo.InvariantCulture) + " " + Convert.ToHexStringLower(sha.GetHashAndReset()));
                        break;
                    }
                case "/chunked":
                    {
                        var count = int.Parse(ctx.Request.Query["n"].ToString(), System.Globalization.CultureInfo.InvariantCulture);
                        for (var i = 0; i < count; i++)
                        {
                            await ctx.Response.Body.WriteAsync(Encoding.ASCII.GetBytes(ChunkedPiece(i)));
                            await ctx.Response.Body.FlushAsync();
                        }
                        break;
                    }
                case "/nocontent":
                    ctx.Response.StatusCode = 204;
                    break;
                case "/bigheader":
                    ctx.Response.Headers["X-Big"] = new string('b', 8192);
                    await ctx.Response.WriteAsync(name);
                    break;
                case "/close":
                    ctx.Response.Headers.Connection = "close";
                    await ctx.Response.WriteAsync(name);
                    break;
                default:
                    await ctx.Response.WriteAsync(name);
                    break;
            }
        });
        await app.StartAsync();
        backend.Port = new Uri(app.Urls.First()).Port;
        return backend;
    }

    /// <summary>Chunk <paramref name="i"/> of <c>/chunked</c>: 2048 bytes, its number then one repeated letter.</summary>
    public static string ChunkedPiece(int i)
    {
        var head = i.ToString("D5", System.Globalization.CultureInfo.InvariantCulture) + ":";
        return head + new string((char)('a' + (i % 26)), 2048 - head.Length);
    }

    /// <summary>The whole body <c>/chunked?n=<paramref name="count"/></c> sends.</summary>
    public static string ChunkedBody(int count) => string.Concat(Enumerable.Range(0, count).Select(ChunkedPiece));

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
