package main

// The tags the scaler finds its workers by. They are copies of the constants
// TagRole, TagStack and RoleWorker of services/elastiq/ec2fleet (ec2fleet.go),
// kept here so that this module depends on Pulumi alone; TestTagsMatchFleet
// reads ec2fleet.go and fails when the two drift apart.
const (
	// tagRole is ec2fleet.TagRole: an instance's role.
	tagRole = "elastiq:role"
	// tagStack is ec2fleet.TagStack: the deployment an instance belongs to.
	tagStack = "elastiq:stack"
	// roleWorker is ec2fleet.RoleWorker: tagRole's value on workers.
	roleWorker = "worker"
)

// roleWeb is tagRole's value on the web instance. The fleet does not look
// for it; it only must differ from roleWorker, so that the scaler can never
// stop or terminate the web instance.
const roleWeb = "web"

// workerTags are the tags of the workers of stack: what ec2fleet.WorkerTags
// returns, and what the IAM conditions on starting, stopping and terminating
// instances require.
func workerTags(stack string) map[string]string {
	return map[string]string{tagRole: roleWorker, tagStack: stack}
}

// resourceTags are the tags of every tagged resource of stack other than the
// worker instances: the stack, and the name shown in the console.
func resourceTags(stack, name string) map[string]string {
	return map[string]string{tagStack: stack, "Name": stack + "-" + name}
}
