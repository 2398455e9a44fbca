/** A pod volume's checked directory on this node, looking up the claim's PV through the API. */
import type { CoreV1Api, V1PersistentVolume, V1Pod } from '@kubernetes/client-node';
import { httpStatusOf } from '../kube/errors.ts';
import { claimNameOf, findVolumeDir, volumeLocation, type VolumeLocation } from './volume-dir.ts';

export async function locatePodVolume(core: CoreV1Api, podsDir: string, pod: V1Pod, volumeName: string): Promise<{ dir: string; location: VolumeLocation }> {
  const claim = claimNameOf(pod, volumeName);
  let pv: V1PersistentVolume | undefined;
  const namespace = pod.metadata?.namespace;
  if (claim !== undefined && namespace !== undefined) {
    const pvc = await core.readNamespacedPersistentVolumeClaim({ namespace, name: claim }).catch((err: unknown) => {
      if (httpStatusOf(err) === 404) return undefined;
      throw err;
    });
    const pvName = pvc?.spec?.volumeName;
    if (pvName !== undefined && pvName !== '') pv = await core.readPersistentVolume({ name: pvName });
  }
  // Without a PV, volumeLocation says the claim is not bound.
  const location = volumeLocation(pod, volumeName, pv);
  return { dir: await findVolumeDir(podsDir, pod.metadata?.uid ?? '', location), location };
}
