package main

import "github.com/elastiq/elastiq/services/elastiq/ec2fleet"

// The tags the scaler finds its workers by are the fleet's own
// (ec2fleet.TagRole, TagStack, RoleWorker): the launch template, the IAM
// conditions and the scaler agree because they use the same constants.
const (
	tagRole    = ec2fleet.TagRole
	tagStack   = ec2fleet.TagStack
	roleWorker = ec2fleet.RoleWorker
)

// roleWeb is tagRole's value on the web instance. The fleet does not look
// for it; it only must differ from roleWorker, so that the scaler can never
// stop or terminate the web instance.
const roleWeb = "web"

// workerTags are the tags of the workers of stack: what ec2fleet.WorkerTags
// returns, and what the IAM conditions on starting, stopping and terminating
// instances require.
func workerTags(stack string) map[string]string { return ec2fleet.WorkerTags(stack) }

// resourceTags are the tags of every tagged resource of stack other than the
// worker instances: the stack, and the name shown in the console.
func resourceTags(stack, name string) map[string]string {
	return map[string]string{tagStack: stack, "Name": stack + "-" + name}
}
