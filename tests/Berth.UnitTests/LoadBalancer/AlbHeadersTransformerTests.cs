using Berth.LoadBalancer.DataPlane;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Berth.UnitTests.LoadBalancer;

/// <summary>The Kestrel path's request rewrite: the raw target kept, ALB's headers set.</summary>
public sealed class AlbHeadersTransformerTests
{
    private static async Task<HttpRequestMessage> TransformAsync(Action<HttpContext> setup)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "GET";
        context.Request.Host = new HostString("lb.example", 8080);
        context.Connection.RemoteIpAddress = System.Net.IPAddress.Parse("203.0.113.5");
        context.Connection.LocalPort = 8080;
        setup(context);
        var proxy = new HttpRequestMessage();
        await new AlbHeadersTransformer(TimeProvider.System).TransformRequestAsync(context, proxy, "http://10.0.0.1:80/", CancellationToken.None);
        return proxy;
    }

    [Fact]
    public async Task AlbHeaders_Set_OtherHeadersKept()
    {
        var proxy = await TransformAsync(c =>
        {
            c.Request.Path = "/x";
            c.Request.Headers["X-Custom"] = "2";
            c.Request.Headers["X-Forwarded-Port"] = "1";
        });
        Assert.Equal("2", Assert.Single(proxy.Headers.GetValues("X-Custom")));
        Assert.Equal("http", Assert.Single(proxy.Headers.GetValues("X-Forwarded-Proto")));
        Assert.Equal("203.0.113.5", Assert.Single(proxy.Headers.GetValues("X-Forwarded-For")));
        Assert.Equal("8080", Assert.Single(proxy.Headers.GetValues("X-Forwarded-Port")));
    }

    [Theory]
    [InlineData("/echo-path/x%2Fy?q=1", "/x/y", "/echo-path/x%2Fy?q=1")]
    [InlineData("/caf%C3%A9/~x?q=a+b&r=%26", "/café/~x", "/caf%C3%A9/~x?q=a+b&r=%26")]
    public async Task RawTarget_IsForwardedAsSent(string raw, string decodedPath, string expected)
    {
        var proxy = await TransformAsync(c =>
        {
            c.Request.Path = decodedPath;
            var feature = c.Features.Get<IHttpRequestFeature>()!;
            feature.RawTarget = raw;
        });
        Assert.Equal("http://10.0.0.1:80" + expected, proxy.RequestUri!.OriginalString);
    }
}
