{{/*
Helpers shared by every template of the chart, the cleanup hook's included.
Public names (other templates may rely on them):
  multus.name, multus.fullname, multus.chart, multus.namespace
  multus.labels              common labels for every resource (no component)
  multus.selectorLabels      app.kubernetes.io/name + instance (stable; never changes on upgrade)
  multus.daemonSetName       name of the Multus DaemonSet
  multus.podSelectorLabels   selector of the Multus DaemonSet's pods (selectorLabels + component cni)
  multus.serviceAccountName  ServiceAccount of the Multus pods
  multus.image               Multus image reference for the selected mode
  multus.multusConfDir       resolved host path of Multus's data dir (<cniConfDir>/multus.d by default)
  multus.installMultus       "true" when Multus itself is installed (not in repair mode), else ""
  multus.hostPaths           hostPaths as the cleanup uses them (a repair preset's where the user kept the default)
  multus.repairPreset        the repair preset that repair.preset names, as YAML ({} for none)
*/}}

{{/* Chart name, overridable with nameOverride. */}}
{{- define "multus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Release-scoped base name of every resource. 63 characters at most (DNS label). A release name that
already contains the chart name is used as it is, so `helm install multus ...` gives `multus`.
*/}}
{{- define "multus.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "multus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Namespace of the namespaced resources: the release namespace. */}}
{{- define "multus.namespace" -}}
{{- .Release.Namespace -}}
{{- end -}}

{{/* Selector labels: stable across upgrades. */}}
{{- define "multus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "multus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Common labels of every resource. */}}
{{- define "multus.labels" -}}
helm.sh/chart: {{ include "multus.chart" . }}
{{ include "multus.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: multus
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Name of the Multus DaemonSet. */}}
{{- define "multus.daemonSetName" -}}
{{- include "multus.fullname" . -}}
{{- end -}}

{{/* Selector of the Multus DaemonSet's pods. */}}
{{- define "multus.podSelectorLabels" -}}
{{ include "multus.selectorLabels" . }}
app.kubernetes.io/component: cni
{{- end -}}

{{/* ServiceAccount the Multus pods run as. */}}
{{- define "multus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "multus.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Name of the thick daemon's ConfigMap. */}}
{{- define "multus.daemonConfigMapName" -}}
{{- /* cut the base, not the suffix: a 63-character fullname must not give two objects one name */ -}}
{{- printf "%s-daemon-config" (include "multus.fullname" . | trunc 49 | trimSuffix "-") -}}
{{- end -}}

{{/*
Multus image: <repository>@<digest> when a digest is set, else <repository>:<tag><suffix>, where the tag
defaults to appVersion and thick mode appends image.thickTagSuffix (unless the tag already ends with it).
*/}}
{{- define "multus.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- $tag := default .Chart.AppVersion $img.tag -}}
{{- if and (eq .Values.mode "thick") $img.thickTagSuffix (not (hasSuffix $img.thickTagSuffix $tag)) -}}
{{- $tag = printf "%s%s" $tag $img.thickTagSuffix -}}
{{- end -}}
{{- printf "%s:%s" $img.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Host path of Multus's data directory (thin writes multus.kubeconfig there). */}}
{{- define "multus.multusConfDir" -}}
{{- $p := include "multus.hostPaths" . | fromYaml -}}
{{- default (printf "%s/multus.d" (trimSuffix "/" $p.cniConfDir)) (trimSuffix "/" $p.multusConfDir) -}}
{{- end -}}

{{/* "true" when Multus is installed; repair mode installs no Multus. */}}
{{- define "multus.installMultus" -}}
{{- if not .Values.repair.enabled -}}true{{- end -}}
{{- end -}}

{{/*
The repair preset repair.preset names, from files/repair-presets.yaml (a copy of the hook package's
presets.yaml, written by tools/sync-presets): {platform, config: {node, cluster}, switchOff, comesBack}, as
YAML; {} when repair.preset is empty. An unknown name fails, naming the valid ones.
*/}}
{{- define "multus.repairPreset" -}}
{{- $name := .Values.repair.preset -}}
{{- if $name -}}
{{- if not .Values.repair.enabled -}}
{{- fail (printf "repair.preset %q needs repair.enabled=true: a preset describes a platform's own Multus, which only repair mode cleans up" $name) -}}
{{- end -}}
{{- $all := (.Files.Get "files/repair-presets.yaml" | fromYaml).presets | default dict -}}
{{- if not (hasKey $all $name) -}}
{{- fail (printf "repair.preset: unknown preset %q; valid presets: %s (docs/repair.md)" $name (keys $all | sortAlpha | join ", ")) -}}
{{- end -}}
{{- toYaml (get $all $name) -}}
{{- else -}}
{}
{{- end -}}
{{- end -}}

{{/*
Upstream Multus v4's host paths, values.yaml's hostPaths defaults: a hostPaths value that differs from its
default is the user's own and wins over a repair preset's (tests/chart/test_chart_repair_presets.py keeps
the two equal).
*/}}
{{- define "multus.defaultHostPaths" -}}
cniConfDir: /etc/cni/net.d
cniBinDir: /opt/cni/bin
multusConfDir: ""
socketDir: /run/multus
cacheDir: /var/lib/cni/multus
{{- end -}}

{{/* The host paths the cleanup cleans: hostPaths, with a repair preset's paths where hostPaths keeps its default. */}}
{{- define "multus.hostPaths" -}}
{{- $paths := deepCopy .Values.hostPaths -}}
{{- $preset := include "multus.repairPreset" . | fromYaml -}}
{{- $defaults := include "multus.defaultHostPaths" . | fromYaml -}}
{{- range $key, $value := (dig "config" "node" dict $preset) -}}
{{- if eq (trimSuffix "/" (toString (get $paths $key))) (trimSuffix "/" (toString (get $defaults $key))) -}}
{{- $_ := set $paths $key $value -}}
{{- end -}}
{{- end -}}
{{- toYaml $paths -}}
{{- end -}}

{{/* Host directory mounted for the thick daemon's socket: the parent of socketDir (the daemon recreates socketDir). */}}
{{- define "multus.socketParentDir" -}}
{{- dir (trimSuffix "/" .Values.hostPaths.socketDir) -}}
{{- end -}}

{{/*
The thick daemon's configuration (daemon-config.json). With default values it equals upstream v4.3.0's
multus-daemon-config; other keys appear only when a value asks for them.
*/}}
{{- define "multus.daemonConfig" -}}
{{- $c := .Values.config -}}
{{- $p := .Values.hostPaths -}}
{{- $conf := dict
  "chrootDir" "/hostroot"
  "cniVersion" (default "0.3.1" $c.cniVersion)
  "logLevel" (default "verbose" $c.logLevel)
  "logToStderr" $c.logToStderr
  "cniConfigDir" "/host/etc/cni/net.d"
  "multusAutoconfigDir" "/host/etc/cni/net.d"
  "multusConfigFile" $c.multusConfigFile
  "socketDir" (printf "/host%s/" (trimSuffix "/" $p.socketDir))
-}}
{{- if ne (trimSuffix "/" $p.socketDir) "/run/multus" -}}
{{- $_ := set $conf "daemonSocketDir" (trimSuffix "/" $p.socketDir) -}}
{{- end -}}
{{- if ne (trimSuffix "/" $p.cacheDir) "/var/lib/cni/multus" -}}
{{- $_ := set $conf "cniDir" (trimSuffix "/" $p.cacheDir) -}}
{{- end -}}
{{- with $c.masterCNIFile -}}{{- $_ := set $conf "multusMasterCNI" . -}}{{- end -}}
{{- if $c.namespaceIsolation -}}{{- $_ := set $conf "namespaceIsolation" true -}}{{- end -}}
{{- with $c.globalNamespaces -}}{{- $_ := set $conf "globalNamespaces" (join "," .) -}}{{- end -}}
{{- with $c.readinessIndicatorFile -}}{{- $_ := set $conf "readinessindicatorfile" . -}}{{- end -}}
{{- if $c.overrideNetworkName -}}{{- $_ := set $conf "overrideNetworkName" true -}}{{- end -}}
{{- with $c.logFile -}}{{- $_ := set $conf "logFile" . -}}{{- end -}}
{{- with $c.additionalBinDir -}}{{- $_ := set $conf "binDir" . -}}{{- end -}}
{{- $conf = mergeOverwrite $conf (deepCopy $c.daemonExtraConfig) -}}
{{- toPrettyJson $conf -}}
{{- end -}}

{{/* Arguments of thin_entrypoint, from the values. */}}
{{- define "multus.thinArgs" -}}
{{- $c := .Values.config -}}
- --multus-conf-file={{ $c.multusConfigFile }}
- --multus-autoconfig-dir=/host/etc/cni/net.d
- --cni-conf-dir=/host/etc/cni/net.d
- --cni-bin-dir=/host/opt/cni/bin
- --multus-kubeconfig-file-host={{ include "multus.multusConfDir" . }}/multus.kubeconfig
- --cleanup-config-on-exit={{ $c.cleanupConfigOnExit }}
- --rename-conf-file={{ $c.renameConfFile }}
- --multus-log-to-stderr={{ $c.logToStderr }}
{{- with $c.cniVersion }}
- --cni-version={{ . }}
{{- end }}
{{- with $c.logLevel }}
- --multus-log-level={{ . }}
{{- end }}
{{- with $c.logFile }}
- --multus-log-file={{ . }}
{{- end }}
{{- with $c.masterCNIFile }}
- --multus-master-cni-file-name={{ . }}
{{- end }}
{{- if $c.namespaceIsolation }}
- --namespace-isolation=true
{{- end }}
{{- with $c.globalNamespaces }}
- --global-namespaces={{ join "," . }}
{{- end }}
{{- with $c.readinessIndicatorFile }}
- --readiness-indicator-file={{ . }}
{{- end }}
{{- if $c.overrideNetworkName }}
- --override-network-name=true
{{- end }}
{{- if $c.skipConfigWatch }}
- --skip-config-watch=true
{{- end }}
{{- with $c.additionalBinDir }}
- --additional-bin-dir={{ . }}
{{- end }}
{{- end -}}

{{/* Checks the schema cannot express. */}}
{{- define "multus.validate" -}}
{{- $p := .Values.hostPaths -}}
{{- if and (eq .Values.mode "thick") (eq (include "multus.socketParentDir" .) "/") -}}
{{- fail (printf "hostPaths.socketDir %q: the daemon recreates this directory, so it must not sit directly under / (its parent is mounted into the pod)" $p.socketDir) -}}
{{- end -}}
{{- if and (eq .Values.mode "thin") .Values.config.renameConfFile .Values.config.cleanupConfigOnExit -}}
{{- fail "config.renameConfFile with config.cleanupConfigOnExit: on every restart of a Multus pod the node would keep only the renamed <primary>.old and lose all pod networking (NotReady); set config.cleanupConfigOnExit=false (the uninstall hook renames the primary config back)" -}}
{{- end -}}
{{- if and .Values.config.globalNamespaces (not .Values.config.namespaceIsolation) -}}
{{- fail "config.globalNamespaces has no effect unless config.namespaceIsolation is true" -}}
{{- end -}}
{{- $_ := include "multus.repairPreset" . -}}
{{- end -}}

{{/* ---------------------------------------------------------------------------------------------------
The uninstall cleanup (cleanup-*.yaml). One config drives both the hook and the Multus pods: the same
host paths, so the cleanup removes exactly what this release's Multus writes.
--------------------------------------------------------------------------------------------------- */}}

{{/* Base name of the cleanup's resources. */}}
{{- define "multus.cleanupName" -}}
{{- /* cut the base, not the suffix: a 63-character fullname must not give Multus and the cleanup one name */ -}}
{{- printf "%s-cleanup" (include "multus.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{/* The node pods' ServiceAccount (no token, no RBAC). */}}
{{- define "multus.cleanupNodeName" -}}
{{- printf "%s-node" (include "multus.cleanupName" . | trunc 58 | trimSuffix "-") -}}
{{- end -}}

{{/* Cleanup values renamed in 0.1 (old name: new path below cleanup). The old names are still read, with a
warning in NOTES.txt, until chart 0.2.0. */}}
{{- define "multus.cleanupRenamed" -}}
nodeSelector: nodes.selector
nodeSelectorExpressions: nodes.selectorExpressions
unreachableNodes: nodes.unreachable
activeDeadlineSeconds: job.activeDeadlineSeconds
backoffLimit: job.backoffLimit
jobNodeSelector: job.nodeSelector
jobAffinity: job.affinity
tolerations: job.tolerations
podAnnotations: job.podAnnotations
resources: job.resources
podSecurityContext: job.podSecurityContext
securityContext: job.securityContext
nodeTimeoutSeconds: nodePod.timeoutSeconds
nodeRetries: nodePod.retries
startErrorGraceSeconds: nodePod.startErrorGraceSeconds
nodePodAnnotations: nodePod.annotations
nodePodResources: nodePod.resources
nodePodSecurityContext: nodePod.securityContext
{{- end -}}

{{/* The cleanup values, with each deprecated name the user set moved to its new place: a map over the new
default is merged as Helm merges a user's map over values.yaml, anything else replaces it. Templates read
`include "multus.cleanup" . | fromYaml`, never .Values.cleanup's renamed keys. */}}
{{- define "multus.cleanup" -}}
{{- $c := deepCopy .Values.cleanup -}}
{{- range $old, $new := include "multus.cleanupRenamed" . | fromYaml -}}
{{- if hasKey $c $old -}}
{{- $group := index $c (first (splitList "." $new)) -}}
{{- $leaf := last (splitList "." $new) -}}
{{- $given := index $c $old -}}
{{- if and (kindIs "map" $given) (kindIs "map" (index $group $leaf)) -}}
{{- $_ := set $group $leaf (mergeOverwrite (deepCopy (index $group $leaf)) $given) -}}
{{- else -}}
{{- $_ := set $group $leaf $given -}}
{{- end -}}
{{- $_ := unset $c $old -}}
{{- end -}}
{{- end -}}
{{- toYaml $c -}}
{{- end -}}

{{/* One line per deprecated cleanup value the user set (for NOTES.txt). */}}
{{- define "multus.cleanupDeprecations" -}}
{{- range $old, $new := include "multus.cleanupRenamed" . | fromYaml -}}
{{- if hasKey $.Values.cleanup $old }}
WARNING: cleanup.{{ $old }} is deprecated: use cleanup.{{ $new }} (the old name is read until chart 0.2.0).
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The cleanup image: <repository>@<digest>, else <repository>:<tag, default the chart version>. */}}
{{- define "multus.cleanupImage" -}}
{{- $img := .Values.cleanup.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.Version $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Multus DaemonSets the cleanup stops, as a YAML list of {namespace, name}. */}}
{{- define "multus.cleanupDaemonSets" -}}
{{- $list := list -}}
{{- if include "multus.installMultus" . -}}
{{- $list = append $list (dict "namespace" (include "multus.namespace" .) "name" (include "multus.daemonSetName" .)) -}}
{{- end -}}
{{- /* a repair preset's, unless cleanup.multusDaemonSets names others */ -}}
{{- $others := .Values.cleanup.multusDaemonSets | default (dig "config" "cluster" "multusDaemonSets" list (include "multus.repairPreset" . | fromYaml)) -}}
{{- range $others -}}
{{- $list = append $list (dict "namespace" .namespace "name" .name) -}}
{{- end -}}
{{- toYaml $list -}}
{{- end -}}

{{/* The cleanup's config file (multus-cleanup's `node:` and `cluster:` sections). */}}
{{- define "multus.cleanupConfig" -}}
{{- $c := include "multus.cleanup" . | fromYaml -}}
{{- $p := include "multus.hostPaths" . | fromYaml -}}
{{- $configFiles := list "00-multus.conf" "00-multus.conflist" -}}
{{- if ne .Values.config.multusConfigFile "auto" -}}
{{- $configFiles = append $configFiles (base .Values.config.multusConfigFile) | uniq -}}
{{- end -}}
{{- $node := dict "cniConfDir" $p.cniConfDir "cniBinDir" $p.cniBinDir "multusConfDir" (include "multus.multusConfDir" .)
      "socketDir" $p.socketDir "cacheDir" $p.cacheDir "configFiles" $configFiles "restoreRenamedPrimary" true
      "extraFiles" $c.extraFiles -}}
{{- with .Values.config.logFile }}{{- $_ := set $node "logFile" . -}}{{- end -}}
{{- $secrets := list -}}
{{- range .Values.imagePullSecrets }}{{- $secrets = append $secrets .name -}}{{- end -}}
{{- $pod := dict "image" (include "multus.cleanupImage" .) "imagePullPolicy" $c.image.pullPolicy
      "imagePullSecrets" $secrets "priorityClassName" $c.priorityClassName "resources" $c.nodePod.resources
      "securityContext" $c.nodePod.securityContext "annotations" ($c.nodePod.annotations | default dict)
      "labels" (dict "app.kubernetes.io/instance" .Release.Name "app.kubernetes.io/part-of" "multus") -}}
{{- with $c.backupDir }}{{- $_ := set $pod "backupDir" . -}}{{- end -}}
{{- $_ := set $pod "serviceAccountName" (include "multus.cleanupNodeName" .) -}}
{{- $cluster := dict "namespace" (include "multus.namespace" .)
      "multusDaemonSets" (include "multus.cleanupDaemonSets" . | fromYamlArray) "nodeSelector" $c.nodes.selector
      "nodeSelectorExpressions" $c.nodes.selectorExpressions
      "unreachableNodes" $c.nodes.unreachable "attachedPods" $c.attachedPods
      "concurrency" ($c.concurrency | int) "nodeRetries" ($c.nodePod.retries | int)
      "nodeTimeoutSeconds" ($c.nodePod.timeoutSeconds | int)
      "startErrorGraceSeconds" ($c.nodePod.startErrorGraceSeconds | int)
      "stopTimeoutSeconds" ($c.stopTimeoutSeconds | int)
      "deadlineSeconds" (sub $c.job.activeDeadlineSeconds 30 | int)
      "deleteNetworkAttachmentDefinitions" $c.deleteNetworkAttachmentDefinitions "deleteCRD" $c.deleteCRD
      "extraResources" $c.extraResources "nodePod" $pod -}}
{{- toYaml (dict "node" $node "cluster" $cluster) -}}
{{- end -}}

{{/* "true" when the cleanup's resources are rendered: the uninstall hook, or repair mode's Job. */}}
{{- define "multus.cleanupEnabled" -}}
{{- if or .Values.cleanup.enabled .Values.repair.enabled -}}true{{- end -}}
{{- end -}}
