namespace Berth.Aws.Protocol;

/// <summary>An error answered to the client as AWS does: an HTTP status and a typed JSON body.</summary>
public class AwsException(string errorType, string message, int statusCode = 400) : Exception(message)
{
    public string ErrorType { get; } = errorType;
    public int StatusCode { get; } = statusCode;

    public static AwsException InvalidParameter(string message) => new("InvalidParameterException", message);
    public static AwsException Client(string message) => new("ClientException", message);
}
