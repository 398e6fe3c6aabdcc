using System.Text;
using System.Xml.Linq;
using Berth.Aws.Protocol;
using Microsoft.Extensions.Primitives;

namespace Berth.UnitTests.LoadBalancer;

public sealed class QueryProtocolTests
{
    private static readonly AwsQueryService Service = new(ServiceModel.Load("Elbv2"));

    private static string Read(string operation, params (string Key, string Value)[] form)
    {
        var dict = form.ToDictionary(f => f.Key, f => new StringValues(f.Value));
        return Service.ReadRequest(Service.Model.Operations[operation], dict).GetRawText();
    }

    [Fact]
    public void ReadRequest_MemberLists_BecomeArraysInIndexOrder()
        => Assert.Equal("""{"Names":["a","b","c"]}""",
            Read("DescribeLoadBalancers", ("Names.member.2", "b"), ("Names.member.1", "a"), ("Names.member.3", "c")));

    [Fact]
    public void ReadRequest_TenOrMoreElements_KeepNumericOrder()
    {
        var form = Enumerable.Range(1, 11).Select(i => ($"Names.member.{i}", $"n{i}")).ToArray();
        Assert.EndsWith("\"n10\",\"n11\"]}", Read("DescribeLoadBalancers", form), StringComparison.Ordinal);
    }

    [Fact]
    public void ReadRequest_NestedStructuresAndTypes_AreConverted()
    {
        var json = Read("CreateListener",
            ("LoadBalancerArn", "arn"), ("Port", "8080"),
            ("DefaultActions.member.1.Type", "forward"),
            ("DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn", "tg"),
            ("DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.Weight", "80"),
            ("DefaultActions.member.1.ForwardConfig.TargetGroupStickinessConfig.Enabled", "true"));
        Assert.Contains("\"Port\":8080", json, StringComparison.Ordinal);
        Assert.Contains("\"TargetGroups\":[{\"TargetGroupArn\":\"tg\",\"Weight\":80}]", json, StringComparison.Ordinal);
        Assert.Contains("\"Enabled\":true", json, StringComparison.Ordinal);
    }

    [Fact]
    public void ReadRequest_EmptyListParameter_IsAnEmptyArray()
        => Assert.Equal("""{"Subnets":[]}""", Read("CreateLoadBalancer", ("Subnets", "")));

    [Theory]
    [InlineData("Bogus", "x", "Bogus")]
    [InlineData("Port", "eighty", "Port")]
    [InlineData("Names.1", "x", "Names.member.N")]
    [InlineData("Names.member.0", "x", "Names.member.N")]
    [InlineData("DefaultActions.member.1.Nope", "x", "DefaultActions.member.1.Nope")]
    public void ReadRequest_Malformed_ThrowsValidationErrorNamingTheParameter(string key, string value, string named)
    {
        var op = key.StartsWith("Names", StringComparison.Ordinal) ? "DescribeLoadBalancers" : "CreateListener";
        var e = Assert.Throws<AwsException>(() => Read(op, (key, value)));
        Assert.Equal("ValidationError", e.ErrorType);
        Assert.Contains(named, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void QueryPath_JsonIndexes_BecomeOneBasedMembers()
        => Assert.Equal("Invalid parameter 'Tags.member.2.Key'", AwsQueryService.QueryPath("Invalid parameter 'Tags[1].Key'"));

    [Fact]
    public void WriteResponse_WrapsResultAndListsMembers()
    {
        var op = Service.Model.Operations["DescribeTags"];
        var json = System.Text.Json.JsonDocument.Parse("""{"TagDescriptions":[{"ResourceArn":"a","Tags":[{"Key":"k","Value":"v"}]}]}""").RootElement;
        var xml = XDocument.Parse(Encoding.UTF8.GetString(Service.WriteResponse(op, json, "req-1")));
        XNamespace ns = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";
        Assert.Equal(ns + "DescribeTagsResponse", xml.Root!.Name);
        var member = xml.Root.Element(ns + "DescribeTagsResult")!.Element(ns + "TagDescriptions")!.Element(ns + "member")!;
        Assert.Equal("v", member.Element(ns + "Tags")!.Element(ns + "member")!.Element(ns + "Value")!.Value);
        Assert.Equal("req-1", xml.Root.Element(ns + "ResponseMetadata")!.Element(ns + "RequestId")!.Value);
    }

    [Fact]
    public void WriteResponse_Timestamps_AreIso8601()
    {
        var op = Service.Model.Operations["DescribeLoadBalancers"];
        var json = System.Text.Json.JsonDocument.Parse("""{"LoadBalancers":[{"CreatedTime":1700000000.5}]}""").RootElement;
        var text = Encoding.UTF8.GetString(Service.WriteResponse(op, json, "r"));
        Assert.Contains("<CreatedTime>2023-11-14T22:13:20.500Z</CreatedTime>", text, StringComparison.Ordinal);
    }

    [Fact]
    public void WriteError_HasSenderTypeCodeAndMessage()
    {
        var xml = XDocument.Parse(Encoding.UTF8.GetString(AwsQueryService.WriteError("ns", 400, "LoadBalancerNotFound", "gone", "r")));
        XNamespace ns = "ns";
        var error = xml.Root!.Element(ns + "Error")!;
        Assert.Equal(("Sender", "LoadBalancerNotFound", "gone"), (error.Element(ns + "Type")!.Value, error.Element(ns + "Code")!.Value, error.Element(ns + "Message")!.Value));
    }
}
