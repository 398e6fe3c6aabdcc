using Berth.Aws.Ecs;
using Berth.Aws.Protocol;
using Microsoft.Extensions.DependencyInjection;

namespace Berth.ControlPlane.Ecs;

/// <summary>Builds the ECS JSON service: the model, plus one operations class per resource family.</summary>
internal static class EcsApi
{
    public static AwsJsonService Build(IServiceProvider sp)
    {
        var service = new AwsJsonService(ServiceModel.Load("Ecs"));
        ActivatorUtilities.CreateInstance<ClusterOperations>(sp).Map(service);
        ActivatorUtilities.CreateInstance<TaskDefinitionOperations>(sp).Map(service);
        ActivatorUtilities.CreateInstance<TaskOperations>(sp).Map(service);
        ActivatorUtilities.CreateInstance<ContainerInstanceOperations>(sp).Map(service);
        ActivatorUtilities.CreateInstance<AttributeOperations>(sp).Map(service);
        ActivatorUtilities.CreateInstance<TagOperations>(sp).Map(service);
        ActivatorUtilities.CreateInstance<AccountSettingOperations>(sp).Map(service);
        ActivatorUtilities.CreateInstance<ServiceOperations>(sp).Map(service);
        ActivatorUtilities.CreateInstance<CapacityProviderOperations>(sp).Map(service);
        ActivatorUtilities.CreateInstance<AgentOperations>(sp).Map(service);
        return service;
    }

    /// <summary>Shorthand for the ECS context's type info, so Map calls stay one line.</summary>
    public static EcsJsonContext Json => EcsJsonContext.Default;
}
