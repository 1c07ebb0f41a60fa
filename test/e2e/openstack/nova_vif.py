"""Render a Neutron port's guest interface with Nova's own code, as nova-compute would.

usage: /usr/bin/python3 nova_vif.py < {"port": <GET /v2.0/ports/ID>, "network": <GET /v2.0/networks/ID>}
prints {"osvif": {object name, plugin, mode, path, vif_name}, "xml": "<interface .../>"}

The VIF is built the way nova/network/neutron.py _build_vif_model does it (type, details, devname, vnic_type,
profile from the binding; the network's MTU in network meta); no Nova service or libvirtd is needed.
"""
import json
import sys


def main():
    data = json.load(sys.stdin)
    port, net = data['port'], data['network']

    import nova.conf
    from nova.network import model
    from nova.network import os_vif_util
    from nova import objects
    import os_vif
    from nova.virt.libvirt import vif as libvirt_vif

    nova.conf.CONF([], project='nova')
    objects.register_all()
    os_vif.initialize()

    network = model.Network(id=net['id'], bridge=None, label=net.get('name'), subnets=[],
                            meta={'injected': False, 'tenant_id': net.get('project_id'), 'mtu': net.get('mtu')})
    vif = model.VIF(
        id=port['id'], address=port['mac_address'], network=network, type=port['binding:vif_type'],
        details=port['binding:vif_details'], devname=('tap' + port['id'])[:model.NIC_NAME_LEN],
        ovs_interfaceid=None, qbh_params=None, qbg_params=None, active=port['status'] == 'ACTIVE',
        vnic_type=port['binding:vnic_type'], profile=port.get('binding:profile') or {},
        preserve_on_delete=False, delegate_create=True)

    osvif = os_vif_util.nova_to_osvif_vif(vif)
    instance = objects.Instance(uuid=port.get('device_id') or '00000000-0000-4000-8000-000000000001', id=1,
                                project_id=net.get('project_id'))
    flavor = objects.Flavor(vcpus=1, memory_mb=256, extra_specs={})
    image_meta = objects.ImageMeta.from_dict({})
    conf = libvirt_vif.LibvirtGenericVIFDriver().get_config(instance, vif, image_meta, flavor, 'qemu')
    xml = conf.to_xml()
    print(json.dumps({
        'osvif': {'object': type(osvif).__name__, 'plugin': osvif.plugin, 'mode': getattr(osvif, 'mode', None),
                  'path': getattr(osvif, 'path', None), 'vif_name': getattr(osvif, 'vif_name', None)},
        'xml': xml if isinstance(xml, str) else xml.decode(),
    }))


if __name__ == '__main__':
    main()
