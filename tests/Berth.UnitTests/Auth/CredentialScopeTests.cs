using System.Text.Json;
using Berth.Aws.Auth;
using Berth.Aws.Protocol;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Time.Testing;

namespace Berth.UnitTests.Auth;

/// <summary>The region of a request from its SigV4 credential scope, and the front door's use of it.</summary>
public sealed class CredentialScopeTests
{
    private const string Header = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-west-2/ecs/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";

    [Fact]
    public void RegionOf_AuthorizationHeader_IsTheScopesRegion()
    {
        var request = new DefaultHttpContext().Request;
        request.Headers.Authorization = Header;
        Assert.Equal("us-west-2", CredentialScope.RegionOf(request));
    }

    [Fact]
    public void RegionOf_HeaderWithoutSpacesBetweenParts_IsTheScopesRegion()
    {
        Assert.Equal("eu-central-1", CredentialScope.RegionOfHeader("AWS4-HMAC-SHA256 Credential=K/20260101/eu-central-1/ecr/aws4_request,SignedHeaders=host,Signature=00"));
    }

    [Fact]
    public void RegionOf_PresignedQuery_IsTheScopesRegion()
    {
        var request = new DefaultHttpContext().Request;
        request.QueryString = new QueryString("?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Fap-southeast-2%2Fecs%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-SignedHeaders=host&X-Amz-Signature=00");
        Assert.Equal("ap-southeast-2", CredentialScope.RegionOf(request));
    }

    [Theory]
    [InlineData("AWS4-HMAC-SHA256 Credential=AKID/20260101/ecs/aws4_request, SignedHeaders=host, Signature=00")] // four parts
    [InlineData("AWS4-HMAC-SHA256 Credential=AKID/20260101//ecs/aws4_request, SignedHeaders=host, Signature=00")] // empty region
    [InlineData("AWS4-HMAC-SHA256 SignedHeaders=host, Signature=00")] // no credential
    [InlineData("AWS AKID:signature")] // SigV2
    public void RegionOf_MalformedOrOtherSchemes_IsNull(string header)
    {
        var request = new DefaultHttpContext().Request;
        request.Headers.Authorization = header;
        Assert.Null(CredentialScope.RegionOf(request));
    }

    [Fact]
    public void RegionOf_Unsigned_IsNull() => Assert.Null(CredentialScope.RegionOf(new DefaultHttpContext().Request));

    [Theory]
    [InlineData("us-east-1", true)]
    [InlineData("us-gov-west-1", true)]
    [InlineData("ap-southeast-5", true)]
    [InlineData("US-EAST-1", false)]
    [InlineData("us-east", false)]
    [InlineData("us-east-1/../x", false)]
    [InlineData("us:east-1", false)]
    [InlineData("", false)]
    public void IsValidRegion_OnlyAwsShapedNames(string region, bool valid) => Assert.Equal(valid, CredentialScope.IsValidRegion(region));

    [Fact]
    public void Authenticate_AuthNone_CallerCarriesTheScopesRegion()
    {
        var auth = new AwsAuthenticator(AuthMode.None, null, new FakeTimeProvider());
        var request = new DefaultHttpContext().Request;
        request.Headers.Authorization = Header;
        var caller = auth.Authenticate(request, [], "ecs");
        Assert.Equal("us-west-2", caller.Region);
        Assert.Equal("anonymous", caller.Name);
        Assert.Null(auth.Authenticate(new DefaultHttpContext().Request, [], "ecs").Region);
    }

    [Fact]
    public void RegionalDispatch_UnsignedRequest_ServedInTheDefaultRegion()
    {
        var dispatch = new RegionalDispatch("eu-west-1", (_, _) => throw new InvalidOperationException(), "ecs");
        Assert.Equal("eu-west-1", dispatch.RegionOf(AwsCaller.Anonymous));
        Assert.Equal("us-west-2", dispatch.RegionOf(AwsCaller.Anonymous with { Region = "us-west-2" }));
        var e = Assert.Throws<AwsAuthException>(() => dispatch.RegionOf(AwsCaller.Anonymous with { Region = "Nowhere" }));
        Assert.Equal("InvalidSignatureException", e.ErrorType);
    }

    [Theory]
    [InlineData("""{"cluster":"arn:aws:ecs:us-east-1:000000000000:cluster/web"}""")]
    [InlineData("""{"clusters":["web","arn:aws:ecs:us-east-1:000000000000:cluster/web"]}""")]
    [InlineData("""{"taskDefinition":"arn:aws:ecs:eu-west-1:000000000000:task-definition/f:1"}""")]
    public void CheckArns_AnotherRegionsArn_InvalidParameterException(string body)
    {
        var dispatch = new RegionalDispatch("us-east-1", (_, _) => throw new InvalidOperationException(), "ecs");
        using var doc = JsonDocument.Parse(body);
        var e = Assert.Throws<AwsException>(() => dispatch.CheckArns(doc.RootElement, "us-west-2"));
        Assert.Equal("InvalidParameterException", e.ErrorType);
        Assert.Equal("Invalid Region in ARN", e.Message);
    }

    [Theory]
    [InlineData("""{"cluster":"arn:aws:ecs:us-west-2:000000000000:cluster/web"}""")]
    [InlineData("""{"cluster":"web","include":["TAGS"]}""")]
    [InlineData("""{"executionRoleArn":"arn:aws:iam::000000000000:role/x"}""")]
    // Nested members are not references: an environment value may hold any text.
    [InlineData("""{"containerDefinitions":[{"environment":[{"name":"A","value":"arn:aws:ecs:us-east-1:0:cluster/x"}]}]}""")]
    public void CheckArns_SameRegionOrNotAReference_Passes(string body)
    {
        var dispatch = new RegionalDispatch("us-east-1", (_, _) => throw new InvalidOperationException(), "ecs");
        using var doc = JsonDocument.Parse(body);
        dispatch.CheckArns(doc.RootElement, "us-west-2");
    }
}
