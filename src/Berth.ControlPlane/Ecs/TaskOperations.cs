using Berth.Aws.Protocol;
using Berth.ControlPlane.State;
using Berth.Core;

namespace Berth.ControlPlane.Ecs;

internal sealed class TaskOperations(EcsState state, Arns arns, TimeProvider time)
{
    public void Map(AwsJsonService s)
    {
        // Operations are mapped here as they are implemented.
        _ = (s, state, arns, time);
    }
}
