using System.Collections.Frozen;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Berth.Aws.Protocol;

/// <summary>One AWS JSON 1.1 service: its model, its validator and a handler per operation.</summary>
public sealed class AwsJsonService
{
    private readonly Dictionary<string, Func<JsonElement, CancellationToken, Task<byte[]>>> _handlers = new(StringComparer.Ordinal);
    private FrozenDictionary<string, Func<JsonElement, CancellationToken, Task<byte[]>>>? _frozen;

    public AwsJsonService(ServiceModel model, string validationErrorType = "InvalidParameterException")
    {
        Model = model;
        Validator = new ShapeValidator(model, validationErrorType);
    }

    public ServiceModel Model { get; }
    public ShapeValidator Validator { get; }
    public string TargetPrefix => Model.TargetPrefix;

    /// <summary>Set when each region has a service of its own: the front door then serves a request with its region's.</summary>
    public RegionalDispatch? Regional { get; set; }

    /// <summary>Binds an operation of the model to a handler. The request is validated against the model first.</summary>
    public AwsJsonService Map<TRequest, TResponse>(string operation, JsonTypeInfo<TRequest> request, JsonTypeInfo<TResponse> response, Func<TRequest, CancellationToken, Task<TResponse>> handler)
    {
        if (!Model.Operations.TryGetValue(operation, out var op))
        {
            throw new ArgumentException($"Operation {operation} is not in the {TargetPrefix} model.", nameof(operation));
        }
        if (_frozen is not null)
        {
            throw new InvalidOperationException("Operations must be mapped before the first request.");
        }
        _handlers[operation] = async (body, ct) =>
        {
            TRequest req;
            try
            {
                if (op.Input is not null)
                {
                    Validator.Validate(op.Input, body);
                }
                req = body.Deserialize(request)!;
            }
            catch (JsonException e)
            {
                throw new AwsException("SerializationException", $"The request body could not be read: {e.Message}");
            }
            catch (InvalidOperationException e)
            {
                // A string that cannot become .NET text: invalid UTF-8 bytes or a lone surrogate escape (\ud800).
                throw new AwsException("SerializationException", $"The request body could not be read: {e.Message}");
            }
            var result = await handler(req, ct).ConfigureAwait(false);
            return JsonSerializer.SerializeToUtf8Bytes(result, response);
        };
        return this;
    }

    public bool IsMapped(string operation) => _handlers.ContainsKey(operation);

    public IReadOnlyCollection<string> MappedOperations => _handlers.Keys;

    internal Func<JsonElement, CancellationToken, Task<byte[]>>? Find(string operation)
    {
        _frozen ??= _handlers.ToFrozenDictionary(StringComparer.Ordinal);
        return _frozen.GetValueOrDefault(operation);
    }
}
