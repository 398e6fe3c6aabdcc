using System.Text.Json;
using Berth.Aws.Protocol;

namespace Berth.UnitTests.Protocol;

public sealed class ShapeValidatorTests
{
    private static readonly ServiceModel Ecs = ServiceModel.Load("Ecs");
    private static readonly ShapeValidator Validator = new(Ecs);

    private static AwsException Fail(string shape, string json)
    {
        using var doc = JsonDocument.Parse(json);
        return Assert.Throws<AwsException>(() => Validator.Validate(shape, doc.RootElement));
    }

    private static void Pass(string shape, string json)
    {
        using var doc = JsonDocument.Parse(json);
        Validator.Validate(shape, doc.RootElement);
    }

    [Fact]
    public void Validate_MissingRequiredNestedMember_NamesThePath()
    {
        var e = Fail("RegisterTaskDefinitionRequest", """{"family":"f","containerDefinitions":[{"name":"a","image":"x"},{"image":"y","portMappings":[]}],"volumes":[{"efsVolumeConfiguration":{}}]}""");
        Assert.Equal("InvalidParameterException", e.ErrorType);
        Assert.Contains("volumes[0].efsVolumeConfiguration.fileSystemId", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_WrongType_IsSerializationException()
    {
        var e = Fail("RunTaskRequest", """{"taskDefinition":"x","count":"three"}""");
        Assert.Equal("SerializationException", e.ErrorType);
        Assert.Contains("count", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_BadEnum_ListsAllowedValues()
    {
        var e = Fail("RunTaskRequest", """{"taskDefinition":"x","launchType":"MOON"}""");
        Assert.Equal("InvalidParameterException", e.ErrorType);
        Assert.Contains("launchType", e.Message, StringComparison.Ordinal);
        Assert.Contains("EC2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_UnknownField_IsRejected()
    {
        var e = Fail("ListClustersRequest", """{"maxResults":5,"bogus":1}""");
        Assert.Contains("bogus", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_IntegerOverflow_IsRejected()
    {
        var e = Fail("ListClustersRequest", """{"maxResults":99999999999}""");
        Assert.Contains("maxResults", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_NullElementInList_IsRejected()
    {
        var e = Fail("DescribeClustersRequest", """{"clusters":["a",null]}""");
        Assert.Contains("clusters[1]", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_NullOptionalMember_IsAccepted() => Pass("ListClustersRequest", """{"maxResults":null,"nextToken":null}""");

    [Fact]
    public void Validate_ValidRunTask_Passes() => Pass("RunTaskRequest", """{"cluster":"c","taskDefinition":"f:1","count":2,"overrides":{"containerOverrides":[{"name":"a","command":["sh"],"environment":[{"name":"K","value":"V"}]}]},"tags":[{"key":"k","value":"v"}]}""");

    [Fact]
    public void Validate_NestedObjectWhereStringExpected_IsSerializationException()
    {
        var deep = string.Concat(Enumerable.Repeat("{\"a\":", 40)) + "1" + new string('}', 40);
        var e = Fail("ListClustersRequest", "{\"nextToken\":" + deep + "}");
        Assert.Equal("SerializationException", e.ErrorType);
        Assert.Contains("nextToken", e.Message, StringComparison.Ordinal);
    }
}
