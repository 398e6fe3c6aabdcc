using Berth.Aws.Ecr;
using Berth.Aws.Protocol;
using Microsoft.Extensions.DependencyInjection;

namespace Berth.Registry.Ecr;

/// <summary>Builds the ECR JSON service: the model, plus one operations class per resource family.</summary>
internal static class EcrApi
{
    public static AwsJsonService Build(IServiceProvider sp)
    {
        var service = new AwsJsonService(ServiceModel.Load("Ecr"));
        ActivatorUtilities.CreateInstance<AuthorizationOperations>(sp).Map(service);
        ActivatorUtilities.CreateInstance<RepositoryOperations>(sp).Map(service);
        ActivatorUtilities.CreateInstance<ImageOperations>(sp).Map(service);
        ActivatorUtilities.CreateInstance<LayerOperations>(sp).Map(service);
        ActivatorUtilities.CreateInstance<PolicyOperations>(sp).Map(service);
        ActivatorUtilities.CreateInstance<LifecycleOperations>(sp).Map(service);
        ActivatorUtilities.CreateInstance<TagOperations>(sp).Map(service);
        ActivatorUtilities.CreateInstance<RegistryOperations>(sp).Map(service);
        ActivatorUtilities.CreateInstance<ScanOperations>(sp).Map(service);
        return service;
    }

    /// <summary>Shorthand for the ECR context's type info, so Map calls stay one line.</summary>
    public static EcrJsonContext Json => EcrJsonContext.Default;
}
