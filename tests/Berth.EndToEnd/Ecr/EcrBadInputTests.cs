using System.Text.Json;
using Berth.EndToEnd.Harness;

namespace Berth.EndToEnd.Ecr;

/// <summary>
/// Malformed ECR requests: each must answer 400 with ECR's error type and a message naming what is
/// wrong, and must leave repositories, images, tags and policies exactly as they were.
/// </summary>
public sealed class EcrBadInputTests : IAsyncLifetime
{
    private const string Prefix = "AmazonEC2ContainerRegistry_V20150921.";
    private const string Repo = "bad-input";
    private const string Arn = "arn:aws:ecr:us-east-1:000000000000:repository/" + Repo;
    private static readonly string Missing = "sha256:" + new string('0', 64);
    private static readonly TestImage Image = TestImage.Build("bad-input");

    private BerthServer? _server;
    private EcsHttp? _http;

    public async ValueTask InitializeAsync()
    {
        _server = await BerthServer.StartAsync("server");
        _http = new EcsHttp(_server.Endpoint);
        await OkAsync("CreateRepository", new { repositoryName = Repo });
        foreach (var blob in new[] { Image.Config, Image.Layer })
        {
            var upload = (await OkAsync("InitiateLayerUpload", new { repositoryName = Repo })).GetProperty("uploadId").GetString();
            await OkAsync("UploadLayerPart", new { repositoryName = Repo, uploadId = upload, partFirstByte = 0, partLastByte = blob.Length - 1, layerPartBlob = Convert.ToBase64String(blob) });
            await OkAsync("CompleteLayerUpload", new { repositoryName = Repo, uploadId = upload, layerDigests = new[] { TestImage.Sha256(blob) } });
        }
        await OkAsync("PutImage", new { repositoryName = Repo, imageManifest = Image.Manifest, imageTag = "v1" });
    }

    public async ValueTask DisposeAsync()
    {
        _http?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    private async Task<JsonElement> OkAsync(string operation, object body)
    {
        var (status, _, text) = await _http!.SendAsync(Prefix + operation, JsonSerializer.Serialize(body));
        Assert.True(status == 200, $"{operation}: {status} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private static string Json(object body) => JsonSerializer.Serialize(body);

    private static string LongPolicy(string selection) => Json(new
    {
        repositoryName = Repo,
        lifecyclePolicyText = $$$"""{"rules":[{"rulePriority":1,"description":"a rule that is long enough for the 100 character minimum","selection":{{{selection}}},"action":{"type":"expire"}}]}""",
    });

    // (operation, body, __type, text the message must contain)
    public static TheoryData<string, string, string, string> Cases => new()
    {
        // The model validator: unknown fields, wrong types, patterns, lengths, enums.
        { "CreateRepository", """{"repositoryName":"ok-name","bogus":1}""", "SerializationException", "bogus" },
        { "CreateRepository", """{"repositoryName":42}""", "SerializationException", "repositoryName" },
        { "CreateRepository", """{"repositoryName":"Upper/Case"}""", "InvalidParameterException", "repositoryName" },
        { "CreateRepository", """{"repositoryName":"a"}""", "InvalidParameterException", "repositoryName" },
        { "CreateRepository", """{"repositoryName":"ok-name","imageTagMutability":"SOMETIMES"}""", "InvalidParameterException", "imageTagMutability" },
        { "CreateRepository", """{"repositoryName":"ok-name","registryId":"abc"}""", "InvalidParameterException", "registryId" },
        { "DescribeRepositories", """{"maxResults":0}""", "InvalidParameterException", "maxResults" },
        { "DescribeRepositories", """{"repositoryNames":"bad-input"}""", "SerializationException", "repositoryNames" },
        { "ListImages", """{"repositoryName":"bad-input","filter":{"tagStatus":"SOME"}}""", "InvalidParameterException", "filter.tagStatus" },
        { "BatchGetImage", """{"repositoryName":"bad-input","imageIds":"v1"}""", "SerializationException", "imageIds" },
        { "BatchGetImage", """{"repositoryName":"bad-input"}""", "InvalidParameterException", "imageIds" },
        { "BatchCheckLayerAvailability", """{"repositoryName":"bad-input","layerDigests":[]}""", "InvalidParameterException", "layerDigests" },
        { "UploadLayerPart", """{"repositoryName":"bad-input","uploadId":"00000000-0000-0000-0000-000000000000","partFirstByte":0,"partLastByte":0,"layerPartBlob":"!!not base64!!"}""", "SerializationException", "layerPartBlob" },
        { "PutLifecyclePolicy", """{"repositoryName":"bad-input","lifecyclePolicyText":"{\"rules\":[]}"}""", "InvalidParameterException", "lifecyclePolicyText" },
        // ECR's own checks.
        { "CreateRepository", """{"repositoryName":"bad-input"}""", "RepositoryAlreadyExistsException", "already exists" },
        { "CreateRepository", """{"repositoryName":"ok-name","imageTagMutability":"IMMUTABLE_WITH_EXCLUSION"}""", "InvalidParameterException", "imageTagMutabilityExclusionFilters" },
        { "CreateRepository", """{"repositoryName":"ok-name","tags":[{"Key":"aws:owner","Value":"me"}]}""", "InvalidTagParameterException", "aws:" },
        { "CreateRepository", """{"repositoryName":"ok-name","encryptionConfiguration":{"encryptionType":"AES256","kmsKey":"k"}}""", "InvalidParameterException", "kmsKey" },
        { "DescribeRepositories", """{"repositoryNames":["nope-repo"]}""", "RepositoryNotFoundException", "nope-repo" },
        { "DescribeRepositories", """{"nextToken":"garbage"}""", "InvalidParameterException", "nextToken" },
        { "DeleteRepository", """{"repositoryName":"bad-input"}""", "RepositoryNotEmptyException", "bad-input" },
        { "DeleteRepository", """{"repositoryName":"nope-repo","force":true}""", "RepositoryNotFoundException", "nope-repo" },
        { "PutImageTagMutability", """{"repositoryName":"bad-input","imageTagMutability":"MUTABLE","imageTagMutabilityExclusionFilters":[{"filterType":"WILDCARD","filter":"x*"}]}""", "InvalidParameterException", "imageTagMutabilityExclusionFilters" },
        { "DescribeImages", """{"repositoryName":"bad-input","imageIds":[{"imageTag":"missing"}]}""", "ImageNotFoundException", "missing" },
        { "DescribeImages", """{"repositoryName":"bad-input","imageIds":[{"imageDigest":"sha256:abc"}]}""", "InvalidParameterException", "sha256:abc" },
        { "BatchDeleteImage", """{"repositoryName":"nope-repo","imageIds":[{"imageTag":"v1"}]}""", "RepositoryNotFoundException", "nope-repo" },
        { "PutImage", """{"repositoryName":"bad-input","imageManifest":"not json","imageTag":"v2"}""", "InvalidParameterException", "imageManifest" },
        { "PutImage", Json(new { repositoryName = Repo, imageManifest = Image.Manifest.Replace(Image.LayerDigest, Missing, StringComparison.Ordinal), imageTag = "v2" }), "LayersNotFoundException", Missing },
        { "PutImage", Json(new { repositoryName = Repo, imageManifest = Image.Manifest, imageTag = "bad tag!" }), "InvalidParameterException", "imageTag" },
        { "PutImage", Json(new { repositoryName = Repo, imageManifest = Image.Manifest, imageDigest = "sha256:abc" }), "InvalidParameterException", "imageDigest" },
        { "PutImage", Json(new { repositoryName = Repo, imageManifest = Image.Manifest, imageDigest = Missing, imageTag = "v2" }), "ImageDigestDoesNotMatchException", Missing },
        { "PutImage", Json(new { repositoryName = Repo, imageManifest = Image.Manifest, imageTag = "v1" }), "ImageAlreadyExistsException", "v1" },
        { "PutImage", Json(new { repositoryName = Repo, imageManifest = Image.Manifest, imageManifestMediaType = "application/vnd.oci.image.manifest.v1+json", imageTag = "v2" }), "InvalidParameterException", "mediaType" },
        { "GetDownloadUrlForLayer", """{"repositoryName":"bad-input","layerDigest":"sha256:0000"}""", "InvalidParameterException", "layerDigest" },
        { "GetDownloadUrlForLayer", Json(new { repositoryName = Repo, layerDigest = Missing }), "LayersNotFoundException", Missing },
        { "UploadLayerPart", """{"repositoryName":"bad-input","uploadId":"00000000-0000-0000-0000-000000000000","partFirstByte":0,"partLastByte":2,"layerPartBlob":"AAAA"}""", "UploadNotFoundException", "00000000-0000-0000-0000-000000000000" },
        { "CompleteLayerUpload", """{"repositoryName":"bad-input","uploadId":"00000000-0000-0000-0000-000000000000","layerDigests":["sha256:00"]}""", "UploadNotFoundException", "00000000-0000-0000-0000-000000000000" },
        { "PutLifecyclePolicy", Json(new { repositoryName = Repo, lifecyclePolicyText = "{\"rules\": [" + new string(' ', 120) }), "InvalidParameterException", "LifecyclePolicyText" },
        { "PutLifecyclePolicy", LongPolicy("""{"tagStatus":"any","countType":"imageCountMoreThan","countUnit":"days","countNumber":3}"""), "InvalidParameterException", "countUnit" },
        { "PutLifecyclePolicy", LongPolicy("""{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":3}"""), "InvalidParameterException", "tagPrefixList" },
        { "PutLifecyclePolicy", LongPolicy("""{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":0}"""), "InvalidParameterException", "countNumber" },
        { "PutLifecyclePolicy", LongPolicy("""{"tagStatus":"everything","countType":"imageCountMoreThan","countNumber":3}"""), "InvalidParameterException", "tagStatus" },
        { "GetLifecyclePolicy", """{"repositoryName":"bad-input"}""", "LifecyclePolicyNotFoundException", "bad-input" },
        { "StartLifecyclePolicyPreview", """{"repositoryName":"bad-input"}""", "LifecyclePolicyNotFoundException", "bad-input" },
        { "GetLifecyclePolicyPreview", """{"repositoryName":"bad-input"}""", "LifecyclePolicyPreviewNotFoundException", "bad-input" },
        { "SetRepositoryPolicy", """{"repositoryName":"bad-input","policyText":"{not json"}""", "InvalidParameterException", "PolicyText" },
        { "SetRepositoryPolicy", """{"repositoryName":"bad-input","policyText":"{\"Statement\":[{\"Effect\":\"Maybe\",\"Action\":\"ecr:*\"}]}"}""", "InvalidParameterException", "Effect" },
        { "GetRepositoryPolicy", """{"repositoryName":"bad-input"}""", "RepositoryPolicyNotFoundException", "bad-input" },
        { "TagResource", """{"resourceArn":"arn:aws:ecs:us-east-1:000000000000:cluster/bad-input","tags":[{"Key":"a","Value":"b"}]}""", "InvalidParameterException", "resourceArn" },
        { "TagResource", """{"resourceArn":"arn:aws:ecr:us-east-1:000000000000:repository/nope-repo","tags":[{"Key":"a","Value":"b"}]}""", "RepositoryNotFoundException", "nope-repo" },
        { "TagResource", Json(new { resourceArn = Arn, tags = Enumerable.Range(0, 51).Select(i => new { Key = $"k{i}", Value = "v" }) }), "TooManyTagsException", "50" },
        { "UntagResource", """{"resourceArn":"arn:aws:ecr:us-east-1:000000000000:repository/bad-input"}""", "InvalidParameterException", "tagKeys" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Request_Malformed_AnswersTypedErrorAndChangesNothing(string operation, string body, string type, string mentions)
    {
        var before = await SnapshotAsync();
        var (status, json, text) = await _http!.SendAsync(Prefix + operation, body);
        Assert.True(status == 400, $"status {status}, expected 400: {text}");
        Assert.Equal(type, json?["__type"]?.GetValue<string>());
        Assert.Contains(mentions, json?["message"]?.GetValue<string>() ?? "", StringComparison.OrdinalIgnoreCase);
        Assert.Equal(before, await SnapshotAsync());
    }

    private async Task<string> SnapshotAsync()
    {
        var parts = new List<string>();
        foreach (var (op, body) in new[]
        {
            ("DescribeRepositories", "{}"),
            ("DescribeImages", """{"repositoryName":"bad-input"}"""),
            ("ListImages", """{"repositoryName":"bad-input"}"""),
            ("GetLifecyclePolicy", """{"repositoryName":"bad-input"}"""),
            ("GetLifecyclePolicyPreview", """{"repositoryName":"bad-input"}"""),
            ("GetRepositoryPolicy", """{"repositoryName":"bad-input"}"""),
            ("ListTagsForResource", $$"""{"resourceArn":"{{Arn}}"}"""),
        })
        {
            var r = await _http!.SendAsync(Prefix + op, body);
            parts.Add($"{op}:{r.Status}:{r.Text}");
        }
        using var http = new HttpClient();
        parts.Add("catalog:" + await http.GetStringAsync($"{_server!.Endpoint}/v2/_catalog"));
        parts.Add("tags:" + await http.GetStringAsync($"{_server!.Endpoint}/v2/{Repo}/tags/list"));
        return string.Join('\n', parts);
    }
}
