using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Berth.EndToEnd.Harness;

/// <summary>Raw AWS JSON 1.1 requests, for inputs no SDK would send.</summary>
public sealed class EcsHttp(string endpoint) : IDisposable
{
    public const string Prefix = "AmazonEC2ContainerServiceV20141113.";
    private readonly HttpClient _http = new() { BaseAddress = new Uri(endpoint), Timeout = TimeSpan.FromSeconds(30) };

    public async Task<(int Status, JsonNode? Body, string Text)> SendAsync(string? target, string body)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, "/") { Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body)) };
        req.Content.Headers.ContentType = new MediaTypeHeaderValue("application/x-amz-json-1.1");
        if (target is not null)
        {
            req.Headers.TryAddWithoutValidation("X-Amz-Target", target);
        }
        using var resp = await _http.SendAsync(req);
        var text = await resp.Content.ReadAsStringAsync();
        JsonNode? json = null;
        try
        {
            json = text.Length > 0 ? JsonNode.Parse(text) : null;
        }
        catch (System.Text.Json.JsonException)
        {
        }
        return ((int)resp.StatusCode, json, text);
    }

    public Task<(int Status, JsonNode? Body, string Text)> CallAsync(string operation, string body) => SendAsync(Prefix + operation, body);

    public void Dispose() => _http.Dispose();
}
