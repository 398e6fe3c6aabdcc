using Berth.Aws.Protocol;

namespace Berth.Aws.Auth;

/// <summary>
/// An authentication or authorization failure. JSON services answer with <see cref="AwsException.ErrorType"/>
/// and <see cref="AwsException.StatusCode"/>; the Query services (ELBv2) name the same failures differently.
/// </summary>
public sealed class AwsAuthException(string jsonType, int jsonStatus, string queryCode, int queryStatus, string message)
    : AwsException(jsonType, message, jsonStatus)
{
    public string QueryCode { get; } = queryCode;
    public int QueryStatus { get; } = queryStatus;

    public const string InvalidTokenMessage = "The security token included in the request is invalid.";
    public const string MismatchMessage = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

    public static AwsAuthException Missing()
        => new("MissingAuthenticationTokenException", 403, "MissingAuthenticationToken", 403, "Missing Authentication Token");

    public static AwsAuthException Incomplete(string message)
        => new("IncompleteSignatureException", 400, "IncompleteSignature", 400, message);

    public static AwsAuthException UnrecognizedClient()
        => new("UnrecognizedClientException", 400, "InvalidClientTokenId", 403, InvalidTokenMessage);

    public static AwsAuthException InvalidSignature(string message = MismatchMessage)
        => new("InvalidSignatureException", 400, "SignatureDoesNotMatch", 403, message);

    /// <summary>A session token past its expiry (or, for a task's role credentials, whose task has stopped).</summary>
    public static AwsAuthException ExpiredToken()
        => new("ExpiredTokenException", 400, "ExpiredToken", 403, "The security token included in the request is expired");

    public static AwsAuthException AccessDenied(string message)
        => new("AccessDeniedException", 400, "AccessDenied", 403, message);
}
