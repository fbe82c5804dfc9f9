{{/* The name of the `helm test` NetworkAttachmentDefinition and of the pod that uses it. */}}
{{- define "multus.testName" -}}
{{- printf "%s-test-net1" (include "multus.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
