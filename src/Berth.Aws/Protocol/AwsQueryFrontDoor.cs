using System.Text;
using Berth.Aws.Auth;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;

namespace Berth.Aws.Protocol;

/// <summary>
/// The Query-protocol half of the front door: <c>POST /</c> with a form body naming <c>Action</c> and
/// <c>Version</c>, dispatched to the <see cref="AwsQueryService"/> whose model has that API version.
/// </summary>
internal sealed partial class AwsQueryFrontDoor(IEnumerable<AwsQueryService> services, ILogger logger, AwsAuthenticator auth, RequestRateLimiter? rateLimiter = null)
{
    private const int MaxBodyBytes = 1024 * 1024;
    private readonly Dictionary<string, AwsQueryService> _byVersion = services.ToDictionary(s => s.Model.ApiVersion, StringComparer.Ordinal);

    public bool IsEmpty => _byVersion.Count == 0;

    public static bool IsQueryRequest(HttpRequest request)
        => request.ContentType is { } ct && ct.StartsWith("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase);

    public async Task HandleAsync(HttpContext context)
    {
        var ct = context.RequestAborted;
        var requestId = Guid.NewGuid().ToString();
        var ns = _byVersion.Count == 1 ? _byVersion.Values.First().Model.XmlNamespace : "";
        var action = "";
        try
        {
            var body = await ReadBodyAsync(context.Request, ct).ConfigureAwait(false);
            var form = QueryHelpers.ParseQuery("?" + Encoding.UTF8.GetString(body));
            action = form.TryGetValue("Action", out var a) ? a.ToString() : "";
            var version = form.TryGetValue("Version", out var v) ? v.ToString() : "";
            var caller = auth.Authenticate(context.Request, body, _byVersion.GetValueOrDefault(version)?.Model.SigningName);
            AwsCaller.Current = caller;
            if (action.Length == 0)
            {
                throw new AwsException("MissingAction", "The request must contain the parameter Action.");
            }
            if (version.Length == 0)
            {
                throw new AwsException("MissingParameter", "The request must contain the parameter Version.");
            }
            if (!_byVersion.TryGetValue(version, out var service))
            {
                throw new AwsException("InvalidAction", $"Version '{version}' is not an API version Berth serves with the Query protocol.");
            }
            ns = service.Model.XmlNamespace;
            string? region = null;
            if (service.Regional is { } regional)
            {
                region = regional.RegionOf(caller);
            }
            if (service.Model.Operations.ContainsKey(action))
            {
                if (rateLimiter is not null && !rateLimiter.TryAcquire(RequestRateLimiter.CallerKey(caller, context), service.Model.SigningName, action))
                {
                    throw RequestRateLimiter.Throttled();
                }
                auth.Authorize(caller, service.Model.SigningName, action);
            }
            var handler = service.Find(action)
                ?? throw (service.Model.Operations.ContainsKey(action)
                    ? new AwsException("UnsupportedOperation", $"Berth does not implement {action} yet.")
                    : new AwsException("InvalidAction", $"Could not find operation {action} for version {version}."));
            if (service.Regional is { } dispatch && region is not null)
            {
                // The request's region holds the resources it names: its own service answers it.
                service = await dispatch.ResolveAsync(region, ct).ConfigureAwait(false);
                handler = service.Find(action) ?? throw new AwsException("UnsupportedOperation", $"Berth does not implement {action} in {region}.");
            }
            var payload = await handler(form, requestId, ct).ConfigureAwait(false);
            context.Response.StatusCode = 200;
            context.Response.ContentType = "text/xml";
            context.Response.Headers["x-amzn-RequestId"] = requestId;
            await context.Response.Body.WriteAsync(payload, ct).ConfigureAwait(false);
        }
        catch (AwsAuthException e)
        {
            await WriteErrorAsync(context, ns, e.QueryStatus, e.QueryCode, e.Message, requestId).ConfigureAwait(false);
        }
        catch (AwsException e)
        {
            await WriteErrorAsync(context, ns, e.StatusCode, e.ErrorType, e.Message, requestId).ConfigureAwait(false);
        }
        catch (FormatException e)
        {
            await WriteErrorAsync(context, ns, 400, "IncompleteSignature", e.Message, requestId).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // client went away
        }
        catch (BadHttpRequestException e)
        {
            await WriteErrorAsync(context, ns, e.StatusCode is 413 or 408 ? e.StatusCode : 400, e.StatusCode == 408 ? "RequestTimeout" : "ValidationError", e.Message, requestId).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            LogUnhandled(logger, e, action);
            await WriteErrorAsync(context, ns, 500, "InternalFailure", "An internal error occurred; the request was not applied. See the server log.", requestId).ConfigureAwait(false);
        }
    }

    private static async Task<byte[]> ReadBodyAsync(HttpRequest request, CancellationToken ct)
    {
        if (request.ContentLength is > MaxBodyBytes)
        {
            throw new AwsException("ValidationError", $"The request body is larger than {MaxBodyBytes} bytes.", 413);
        }
        // Bounded whether or not Content-Length was sent; the raw bytes are kept because the signature covers them.
        using var buffer = new MemoryStream();
        var chunk = new byte[16384];
        int n;
        while ((n = await request.Body.ReadAsync(chunk, ct).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + n > MaxBodyBytes)
            {
                throw new AwsException("ValidationError", $"The request body is larger than {MaxBodyBytes} bytes.", 413);
            }
            buffer.Write(chunk, 0, n);
        }
        return buffer.ToArray();
    }

    private static Task WriteErrorAsync(HttpContext context, string ns, int status, string code, string message, string requestId)
    {
        if (context.Response.HasStarted)
        {
            return Task.CompletedTask;
        }
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/xml";
        context.Response.Headers["x-amzn-RequestId"] = requestId;
        return context.Response.Body.WriteAsync(AwsQueryService.WriteError(ns, status, code, message, requestId), context.RequestAborted).AsTask();
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Unhandled error in Query action {Action}")]
    private static partial void LogUnhandled(ILogger logger, Exception e, string action);
}
