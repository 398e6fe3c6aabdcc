using System.Text.Json;
using Berth.Aws.Auth;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Berth.Aws.Protocol;

/// <summary>
/// The single AWS endpoint: dispatches <c>POST /</c> on X-Amz-Target to the mapped JSON services, and
/// form bodies without one (<c>Action=...&amp;Version=...</c>) to the Query services.
/// </summary>
/// <remarks>
/// Authentication happens here, once for every API behind the door: the body is read (bounded), the SigV4
/// signature checked against it, the caller's permissions checked against the operation, and only then is
/// the JSON parsed and the handler run with <see cref="AwsCaller.Current"/> set. A service with a
/// <see cref="RegionalDispatch"/> is then swapped for the one of the request's region (see its remarks).
/// </remarks>
public sealed partial class AwsFrontDoor(IEnumerable<AwsJsonService> services, IEnumerable<AwsQueryService> queryServices, ILogger<AwsFrontDoor> logger,
    AwsAuthenticator? authenticator = null, RequestRateLimiter? rateLimiter = null)
{
    public const string JsonContentType = "application/x-amz-json-1.1";
    // ECR's UploadLayerPart carries up to 20 MiB of layer, base64-encoded (about 26.7 MiB of JSON);
    // Kestrel's own request limit (30,000,000 bytes) still caps what reaches this point.
    private const int MaxBodyBytes = 28 * 1024 * 1024;
    // No AWS request shape nests deeper than a few dozen levels (a task definition's container definitions are
    // the deepest, about 8); a bound keeps the validator's recursion and the parser's stack small.
    public const int MaxJsonDepth = 64;

    private readonly Dictionary<string, AwsJsonService> _byPrefix = services.ToDictionary(s => s.TargetPrefix, StringComparer.Ordinal);
    private readonly AwsAuthenticator _auth = authenticator ?? new AwsAuthenticator(AuthMode.None, null, TimeProvider.System);
    private readonly AwsQueryFrontDoor _query = new(queryServices, logger, authenticator ?? new AwsAuthenticator(AuthMode.None, null, TimeProvider.System), rateLimiter);

    public async Task HandleAsync(HttpContext context)
    {
        var ct = context.RequestAborted;
        var target = context.Request.Headers["X-Amz-Target"].ToString();
        if (target.Length == 0 && !_query.IsEmpty && AwsQueryFrontDoor.IsQueryRequest(context.Request))
        {
            await _query.HandleAsync(context).ConfigureAwait(false);
            return;
        }
        string operation = "";
        try
        {
            var dot = target.LastIndexOf('.');
            var service = dot > 0 ? _byPrefix.GetValueOrDefault(target[..dot]) : null;
            var body = await ReadBodyAsync(context.Request, ct).ConfigureAwait(false);
            var caller = _auth.Authenticate(context.Request, body.Span, service?.Model.SigningName);
            AwsCaller.Current = caller;
            if (service is null)
            {
                throw new AwsException("UnknownOperationException", target.Length == 0 ? "Missing X-Amz-Target header." : $"Unknown operation '{target}'.");
            }
            operation = target[(dot + 1)..];
            string? region = null;
            if (service.Regional is { } regional)
            {
                region = regional.RegionOf(caller);
            }
            if (service.Model.Operations.ContainsKey(operation))
            {
                if (rateLimiter is not null && !rateLimiter.TryAcquire(RequestRateLimiter.CallerKey(caller, context), service.Model.SigningName, operation))
                {
                    throw RequestRateLimiter.Throttled();
                }
                _auth.Authorize(caller, service.Model.SigningName, operation);
            }
            var handler = service.Find(operation)
                ?? throw (service.Model.Operations.ContainsKey(operation)
                    ? new AwsException("UnsupportedFeatureException", $"Berth does not implement {operation} yet.")
                    : new AwsException("UnknownOperationException", $"Unknown operation '{target}'."));

            JsonDocument doc;
            try
            {
                doc = body.Length == 0 ? JsonDocument.Parse("{}") : JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = MaxJsonDepth });
            }
            catch (JsonException e)
            {
                throw new AwsException("SerializationException", e.Message.Contains("maximum configured depth", StringComparison.Ordinal)
                    ? $"The request body nests JSON deeper than {MaxJsonDepth} levels (at {e.Path ?? "$"})."
                    : $"The request body is not valid JSON: {e.Message}");
            }
            byte[] payload;
            using (doc)
            {
                if (service.Regional is { } dispatch && region is not null)
                {
                    // The request's region holds the resources it names: its own service answers it.
                    dispatch.CheckArns(doc.RootElement, region);
                    service = await dispatch.ResolveAsync(region, ct).ConfigureAwait(false);
                    handler = service.Find(operation) ?? throw new AwsException("UnsupportedFeatureException", $"Berth does not implement {operation} in {region}.");
                }
                payload = await handler(doc.RootElement, ct).ConfigureAwait(false);
            }
            context.Response.StatusCode = 200;
            context.Response.ContentType = JsonContentType;
            context.Response.Headers["x-amzn-RequestId"] = Guid.NewGuid().ToString();
            await context.Response.Body.WriteAsync(payload, ct).ConfigureAwait(false);
        }
        catch (AwsException e)
        {
            await WriteErrorAsync(context, e.StatusCode, e.ErrorType, e.Message).ConfigureAwait(false);
        }
        catch (FormatException e)
        {
            // A header or query string the verifier could not decode: the request is malformed, not the server.
            await WriteErrorAsync(context, 400, "IncompleteSignatureException", e.Message).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // client went away
        }
        catch (BadHttpRequestException e)
        {
            // 413: over Kestrel's body limit; 408: the body came slower than Kestrel's minimum data rate (slowloris).
            await WriteErrorAsync(context, e.StatusCode is 413 or 408 ? e.StatusCode : 400, e.StatusCode == 408 ? "RequestTimeoutException" : "SerializationException", e.Message).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            LogUnhandled(logger, e, operation);
            await WriteErrorAsync(context, 500, "ServerException", "An internal error occurred; the request was not applied. See the server log.").ConfigureAwait(false);
        }
    }

    private static async Task<ReadOnlyMemory<byte>> ReadBodyAsync(HttpRequest request, CancellationToken ct)
    {
        if (request.ContentLength is > MaxBodyBytes)
        {
            throw new AwsException("SerializationException", $"The request body is larger than {MaxBodyBytes} bytes.", 413);
        }
        // Read in bounded steps: a chunked body has no Content-Length, and copying it whole first would let one
        // request grow the server by gigabytes before it is refused.
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        while ((n = await request.Body.ReadAsync(chunk, ct).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + n > MaxBodyBytes)
            {
                throw new AwsException("SerializationException", $"The request body is larger than {MaxBodyBytes} bytes.", 413);
            }
            buffer.Write(chunk, 0, n);
        }
        return buffer.ToArray();
    }

    public static Task WriteErrorAsync(HttpContext context, int status, string type, string message)
    {
        if (context.Response.HasStarted)
        {
            return Task.CompletedTask;
        }
        context.Response.StatusCode = status;
        context.Response.ContentType = JsonContentType;
        context.Response.Headers["x-amzn-ErrorType"] = type;
        context.Response.Headers["x-amzn-RequestId"] = Guid.NewGuid().ToString();
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("__type", type);
            w.WriteString("message", message);
            w.WriteEndObject();
        }
        return context.Response.Body.WriteAsync(ms.ToArray(), context.RequestAborted).AsTask();
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Unhandled error in {Operation}")]
    private static partial void LogUnhandled(ILogger logger, Exception e, string operation);
}

public static class AwsFrontDoorExtensions
{
    /// <summary>Maps <c>POST /</c> for every registered <see cref="AwsJsonService"/>.</summary>
    public static IEndpointConventionBuilder MapAwsFrontDoor(this IEndpointRouteBuilder endpoints)
    {
        var door = ActivatorUtilities.CreateInstance<AwsFrontDoor>(endpoints.ServiceProvider);
        return endpoints.MapPost("/", door.HandleAsync);
    }
}
